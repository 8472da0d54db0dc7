"""Seeded reruns write the same bits whatever the machine's load."""

import os
import subprocess
import sys

PRODUCT = """
import hashlib
import saeprobe  # noqa: F401  (sets MKL's reproducibility mode before the first product)
import torch

torch.manual_seed(0)
x, w = torch.randn(512, 640), torch.randn(640, 4096)
print(hashlib.md5((x @ w @ w.T).numpy().tobytes()).hexdigest())
"""


def product_hash(threads: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MKL_", "OMP_"))}
    env |= {"MKL_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(
        [sys.executable, "-c", PRODUCT], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_a_matrix_product_has_the_same_bits_on_one_thread_and_on_two():
    assert product_hash(1) == product_hash(2)
