"""The selfreg stage's outputs: every fit, the metrics DVC compares across runs, and the
curves of accuracy and fairness gaps against lambda."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from saeprobe.io import atomic_outputs, json_text
from saeprobe.regularization.experiment import SELFREG

PLOTTED = ("accuracy", "dp_gap", "eo_gap")  # one curve file each, on the test split


def method_key(method: str, lam: float | None) -> str:
    """`selfreg_lambda3`, `selfreg_lambda0p3` or `plain`: a metrics key without dots."""
    if lam is None or math.isnan(lam):
        return method
    return f"{method}_lambda{lam:g}".replace(".", "p")


def selfreg_metrics(summary: pl.DataFrame, unintended: int) -> dict:
    """{split: {method: {metric: {mean, std, ci_low, ci_high, p_vs_plain}}}} and the size of
    the unintended set (`empty_unintended` flags a run where self-regularization had nothing
    to remove, so its methods were not run)."""
    out: dict = {"unintended": unintended, "empty_unintended": unintended == 0}
    measured = set(summary.filter(pl.col("metric") == "dp_gap")["split"].to_list())
    for split in summary["split"].unique().to_list():
        if split not in measured:
            out.setdefault(split, {})["fairness"] = "not measured: no binary 'group' column"
    for row in summary.iter_rows(named=True):
        method = method_key(row["method"], row["lambda"])
        entry = {k: row[k] for k in ("mean", "std", "ci_low", "ci_high")}
        if row["method"] != "plain":
            entry["p_vs_plain"] = row["p_vs_plain"]
        out.setdefault(row["split"], {}).setdefault(method, {})[row["metric"]] = entry
    return out


def lambda_curves(summary: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Per plotted metric: (series, lambda, metric) on the test split; a method without the
    penalty is a flat line over the swept lambdas, so every method reads against them."""
    test = summary.filter(pl.col("split") == "test")
    lambdas = sorted({lam for lam in test["lambda"].to_list() if not math.isnan(lam)})
    curves = {}
    for metric in PLOTTED:
        rows = []
        for row in test.filter(pl.col("metric") == metric).iter_rows(named=True):
            penalized = SELFREG.get(row["method"], (False, False))[1]
            for lam in [row["lambda"]] if penalized else lambdas:
                rows.append({"series": row["method"], "lambda": lam, metric: row["mean"]})
        if rows:
            curves[metric] = pl.DataFrame(rows).sort("series", "lambda")
    return curves


def write_selfreg_outputs(
    results: pl.DataFrame,
    summary: pl.DataFrame,
    unintended: int,
    *,
    results_path: Path,
    metrics_path: Path,
    plots_dir: Path,
) -> dict:
    """Every output of one selfreg stage, together (atomically)."""
    metrics = selfreg_metrics(summary, unintended)
    curves = lambda_curves(summary)
    with atomic_outputs(results_path, metrics_path, plots_dir) as (table, report, plots):
        results.write_parquet(table)
        report.write_text(json_text(metrics))
        plots.mkdir()
        for metric in PLOTTED:
            empty = {"series": pl.String, "lambda": pl.Float64, metric: pl.Float64}
            frame = curves.get(metric, pl.DataFrame(schema=empty))
            frame.write_csv(plots / f"{metric}.csv")
    return metrics
