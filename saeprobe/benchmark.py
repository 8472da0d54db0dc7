"""The sparse-probing paper's whole benchmark, one task at a time: the task prepared as a
`sae_probes` data set, its pooled hidden states and pretrained-SAE codes computed in memory,
and the probe sweep of the probe stage over them.

The paper's probes read one token (the last), and an SAE encodes each token on its own, so
the SAE code of the last token is the SAE applied to the last token's hidden state: no
token store is written, which keeps a task to one forward pass and one stage."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from saeprobe.config import (
    BenchmarkConfig,
    DatasetConfig,
    ExtractConfig,
    ProbeConfig,
    RegimeConfig,
    benchmark_dataset,
)
from saeprobe.data.prepare import prepare_dataset
from saeprobe.extract import pooled_states
from saeprobe.models import LoadedModel
from saeprobe.probes.sweep import Representation, run_sweep
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.store import pooled_column


def prepare_task(task: str, cfg: BenchmarkConfig, seed: int) -> pl.DataFrame:
    """The task's prepared table, as `prepare` makes it for a `sae_probes` data set."""
    return prepare_dataset(task, DatasetConfig(**benchmark_dataset(cfg, task)), seed)


@torch.no_grad()
def task_representations(
    prepared: pl.DataFrame,
    pooled: dict[str, np.ndarray],
    sae: SparseAutoencoder,
    layer: int,
    probe: ProbeConfig,
) -> list[Representation]:
    """The text, the hidden state at probe.hidden_pooling and the pretrained SAE's code of
    the last token (probe.sae_pooling), rows in `prepared` order."""
    texts = np.asarray(prepared["text"].to_list(), dtype=object)
    hidden = pooled[pooled_column(layer, probe.hidden_pooling)]
    reps = [
        Representation(-1, "text", texts),
        Representation(layer, "hidden", hidden, probe.hidden_pooling),
    ]
    if probe.sae_methods:
        token = torch.from_numpy(pooled[pooled_column(layer, probe.sae_pooling)])
        codes = sp.csr_matrix(sae.encode(token).numpy().astype(np.float32))
        reps.append(Representation(layer, "sae_pretrained", codes, probe.sae_pooling))
    return reps


def run_task(
    task: str,
    cfg: BenchmarkConfig,
    *,
    model: LoadedModel,
    sae: SparseAutoencoder,
    extract: ExtractConfig,
    probe: ProbeConfig,
    regimes: dict[str, RegimeConfig],
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The task's probe fits (the probe stage's results table), and where its time went:
    seconds to prepare, to compute the hidden states and SAE codes, and to probe (per
    regime and representation kind, and per regime and method)."""
    start = time.perf_counter()
    prepared = prepare_task(task, cfg, seed)
    prepared_at = time.perf_counter()
    # Only the poolings the probes read (the SAE reads one token's hidden state).
    poolings = list(dict.fromkeys([probe.hidden_pooling, probe.sae_pooling]))
    pooled = pooled_states(
        model,
        prepared["text"].to_list(),
        prepared["id"].to_list(),
        dataclasses.replace(extract, layers=[cfg.layer], pooling=poolings),
        progress=False,
        where="probe.hidden_pooling",
    )
    reps = task_representations(prepared, pooled, sae, cfg.layer, probe)
    encoded_at = time.perf_counter()
    results, seconds = run_sweep(task, prepared, reps, probe, regimes, seed, progress)
    timing = {
        "docs": prepared.height,
        "prepare_s": round(prepared_at - start, 3),
        "hidden_states_and_sae_s": round(encoded_at - prepared_at, 3),
        "probe_s": round(time.perf_counter() - encoded_at, 3),
        **seconds,
    }
    return results, timing


PRESET_HEADER = """\
# The sparse-probing paper's whole benchmark: params.yaml with `benchmark.tasks` set to the
# 113 binary tasks of the sae-probes package (`make params-benchmark.yaml` writes this file
# from params.yaml; tests/test_benchmark.py checks that it is up to date). Run it with
#   cp params-benchmark.yaml params.yaml && dvc repro benchmark_report
# (README, "The full benchmark").
"""


def preset_text(params_text: str, tasks: list[str]) -> str:
    """params.yaml's text (or a preset's) with `benchmark.tasks` set to `tasks`."""
    lines = params_text.removeprefix(PRESET_HEADER).splitlines()
    if "benchmark:" not in lines:
        raise ValueError("the params file has no top-level `benchmark:` section")
    start = lines.index("benchmark:")
    row = next((i for i in range(start, len(lines)) if lines[i].startswith("  tasks:")), None)
    if row is None:
        raise ValueError("the params file's `benchmark:` section has no `tasks:` key")
    end = row + 1
    while end < len(lines) and lines[end].startswith("    - "):  # a task list written before
        end += 1
    lines[row:end] = ["  tasks:", *(f"    - {task}" for task in tasks)]
    return PRESET_HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":  # make params-benchmark.yaml
    import sys
    from pathlib import Path

    from saeprobe.data.sources import binary_sae_probes_tasks
    from saeprobe.io import atomic_path

    source, target = (Path(arg) for arg in sys.argv[1:3])
    with atomic_path(target) as tmp:
        tmp.write_text(preset_text(source.read_text(), binary_sae_probes_tasks()))
