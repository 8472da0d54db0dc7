"""saeprobe's TopK SAE training against EleutherAI's sparsify on the same activations.

    pip install eai-sparsify   # the peer; it installs beside transformers 5.23
    python bench/sae_train.py [--store data/corpus/activations/tokens.h5] [--layer 6]

Both train a TopK SAE of the same width and k with Adam at the same learning rate, fp32, on
the same in-memory activations and batches, with unit-norm decoder rows and no AuxK; the
peer runs its own SparseCoder forward pass and its trainer's gradient step. Prints tokens/s
of each, their ratio, and each one's FVU on the same held-out tokens afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from saeprobe.config import SAETrainConfig
from saeprobe.sae.evaluate import reconstruction_metrics
from saeprobe.sae.train import new_sae, train_sae


def activations(store: Path, layer: int, n: int, seed: int) -> torch.Tensor:
    from saeprobe.store import TokenStore

    with TokenStore(store) as s:
        x = s.read(layer, slice(0, min(n, s.n_tokens)))
    return torch.from_numpy(x[np.random.default_rng(seed).permutation(len(x))])


def batches(x: torch.Tensor, batch_size: int):
    while True:
        for i in range(0, len(x) - batch_size + 1, batch_size):
            yield x[i : i + batch_size]


def train_sparsify(x, d_sae, k, lr, batch_size, steps):
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    from sparsify import SparseCoder, SparseCoderConfig

    coder = SparseCoder(x.shape[1], SparseCoderConfig(num_latents=d_sae, k=k))
    with torch.no_grad():
        coder.b_dec.copy_(x[:8192].mean(0))
    opt = torch.optim.Adam(coder.parameters(), lr=lr)
    it = batches(x, batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        out = coder(next(it))
        opt.zero_grad(set_to_none=True)
        out.fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        coder.set_decoder_norm_to_unit_norm()
    seconds = time.perf_counter() - start
    return coder, steps * batch_size / seconds


def fvu_sparsify(coder, held_out):
    with torch.no_grad():
        sse = total = 0.0
        for xb in held_out.split(4096):
            sse += float((coder(xb).sae_out - xb).pow(2).sum())
        total = float((held_out - held_out.mean(0)).pow(2).sum())
    return sse / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=Path("data/corpus/activations/tokens.h5"))
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = activations(args.store, args.layer, args.tokens + 20_000, seed=0)
    # Both see the same scale: sparsify has no input normalization of its own.
    x = x * (x.shape[1] ** 0.5 / x.norm(dim=1).mean())
    n_held = min(20_000, len(x) // 5)
    held_out, train = x[:n_held], x[n_held:]
    d_in = x.shape[1]
    steps = len(train) // args.batch_size
    cfg = SAETrainConfig(
        expansion=args.expansion,
        k=args.k,
        k_start=None,  # sparsify trains at a fixed k
        lr=args.lr,
        batch_size=args.batch_size,
        train_tokens=steps * args.batch_size,
        aux_k=0,
        warmup_fraction=0,
        decay_fraction=0,
        normalize=False,
    )
    print(
        f"{len(train)} tokens of width {d_in}, width {d_in * args.expansion}, k {args.k}, "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads, {x.device}"
    )
    torch.manual_seed(0)
    peer, peer_tps = train_sparsify(
        train, d_in * args.expansion, args.k, args.lr, args.batch_size, steps
    )
    peer_fvu = fvu_sparsify(peer, held_out)
    torch.manual_seed(0)
    sae = new_sae(cfg, d_in, train[:8192].numpy(), layer=args.layer, model="bench")
    ours = train_sae(sae, batches(train, args.batch_size), cfg, progress=False)
    ours_fvu = reconstruction_metrics(sae, held_out.split(4096))["fvu"]
    print(f"sparsify   {peer_tps:10,.0f} tokens/s   held-out FVU {peer_fvu:.4f}")
    ours_tps = ours["timing"]["tokens_per_s"]
    print(f"saeprobe   {ours_tps:10,.0f} tokens/s   held-out FVU {ours_fvu:.4f}")
    print(f"ratio saeprobe/sparsify tokens/s: {ours_tps / peer_tps:.2f}")


if __name__ == "__main__":
    main()
