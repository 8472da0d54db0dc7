"""The probe report: the results table of every data set, one metrics file keyed by regime
(so a regime added to or removed from params needs no change in dvc.yaml), and plot data."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from saeprobe.config import ProbeReportConfig
from saeprobe.io import atomic_outputs, json_text
from saeprobe.probes.schema import results_frame
from saeprobe.probes.summary import (
    binarized_bars,
    layer_curve,
    level_curve,
    mosaic_bars,
    pooling_bars,
    sae_k_curve,
    summarize,
)


def plot_tables(results: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The data behind each DVC plot, empty (with its columns) when its regime did not run."""
    return {
        "scarcity": level_curve(results, "scarcity"),
        "imbalance": level_curve(results, "imbalance"),
        "noise": level_curve(results, "noise"),
        "layers": layer_curve(results),
        "sae_k": sae_k_curve(results),
        "binarized": binarized_bars(results),
        "pooling": pooling_bars(results),
        "mosaic": mosaic_bars(results),
    }


def write_probe_report(
    probe_files: list[Path],
    *,
    results_path: Path,
    metrics_path: Path,
    plots_dir: Path,
    n_boot: int,
    seed: int,
    cfg: ProbeReportConfig,
    extra_files: list[Path] = (),
) -> dict:
    """Concatenate the data sets' probe tables and write every report output together. The
    rows of `extra_files` (the transfer and multi-token stages') join the results table;
    their summaries are their own."""
    frames = [pl.read_parquet(path) for path in probe_files]
    probes = pl.concat(frames) if frames else results_frame([])
    metrics = summarize(probes, n_boot, seed, cfg)
    tables = plot_tables(probes)
    results = pl.concat([probes, *(pl.read_parquet(path) for path in extra_files)])
    # Each plot file on its own: reports/plots also holds other stages' plots (selfreg).
    plot_paths = [plots_dir / f"{name}.csv" for name in tables]
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(results_path, metrics_path, *plot_paths) as (table, summary, *plots):
        results.write_parquet(table)
        summary.write_text(json_text(metrics))
        for path, table_ in zip(plots, tables.values(), strict=True):
            table_.write_csv(path)
    return metrics
