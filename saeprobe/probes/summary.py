"""From the results table to what a reviewer asks for: means with bootstrap 95% intervals,
the best SAE probe against the best baseline (paired over seeds), the quiver, and curves."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats

SAE_PREFIX = "sae"


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int) -> list[float | None]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return [None, None]
    if len(values) == 1:
        return [float(values[0]), float(values[0])]
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def with_labels(results: pl.DataFrame) -> pl.DataFrame:
    """Only fitted rows, with `probe` = L<layer>/<representation>/<method> and `is_sae`."""
    ok = results.filter(pl.col("status") == "ok")
    return ok.with_columns(
        pl.when(pl.col("layer") >= 0)
        .then(pl.lit("L") + pl.col("layer").cast(pl.String) + pl.lit("/"))
        .otherwise(pl.lit(""))
        .add(pl.col("representation") + pl.lit("/") + pl.col("method"))
        .alias("probe"),
        pl.col("representation").str.starts_with(SAE_PREFIX).alias("is_sae"),
    )


def best_probe(rows: pl.DataFrame) -> dict | None:
    """The probe with the best mean validation AUC: choosing by test AUC would flatter it."""
    if rows.is_empty():
        return None
    means = (
        rows.group_by("probe")
        .agg(pl.col("val_auc").mean(), pl.col("roc_auc").mean())
        .filter(pl.col("val_auc").is_not_nan())
    )
    if means.is_empty():
        return None
    best = means.sort(["val_auc", "probe"], descending=[True, False], nulls_last=True).row(
        0, named=True
    )
    return {"probe": best["probe"], "val_auc": best["val_auc"], "roc_auc": best["roc_auc"]}


def compare_best(rows: pl.DataFrame, n_boot: int, seed: int) -> dict:
    """Best baseline and best SAE probe of one data set, and a paired t-test over seeds."""
    out: dict = {}
    per_seed = {}
    for kind, part in (
        ("baseline", rows.filter(~pl.col("is_sae"))),
        ("sae", rows.filter(pl.col("is_sae"))),
    ):
        best = best_probe(part)
        if best is None:
            continue
        chosen = (
            part.filter(pl.col("probe") == best["probe"])
            .group_by("seed")
            .agg(pl.col("roc_auc").mean())
            .sort("seed")
        )
        best["ci95"] = bootstrap_ci(chosen["roc_auc"].to_numpy(), n_boot, seed)
        out[f"best_{kind}"] = best
        per_seed[kind] = dict(chosen.iter_rows())
    if len(per_seed) == 2:
        seeds = sorted(set(per_seed["sae"]) & set(per_seed["baseline"]))
        a = np.array([per_seed["sae"][s] for s in seeds])
        b = np.array([per_seed["baseline"][s] for s in seeds])
        out["sae_minus_baseline"] = float(np.mean(a - b)) if len(seeds) else None
        # With fewer than two seeds, or differences without spread, there is nothing to test.
        if len(seeds) >= 2 and np.std(a - b) > 0:
            out["paired_t_p"] = float(stats.ttest_rel(a, b).pvalue)
        else:
            out["paired_t_p"] = None
    return out


def quiver(rows: pl.DataFrame) -> dict:
    """Per data set and seed, pick the probe with the best validation AUC among baselines
    only, and among baselines plus SAE probes; how often an SAE probe is picked, and the
    mean test AUC of both quivers."""
    picks = []
    for (_dataset, _seed), part in rows.group_by(["test_dataset", "seed"], maintain_order=True):
        # Ties in validation AUC go to the first probe by name, never to row order.
        part = part.filter(pl.col("val_auc").is_not_null() & pl.col("val_auc").is_not_nan())
        part = part.sort(["val_auc", "probe"], descending=[True, False])
        base = part.filter(~pl.col("is_sae"))
        if base.is_empty():
            continue
        b = base.row(0, named=True)
        a = part.row(0, named=True)
        picks.append((b["roc_auc"], a["roc_auc"], a["is_sae"]))
    if not picks:
        return {}
    base_auc, all_auc, sae_won = map(np.asarray, zip(*picks, strict=True))
    return {
        "settings": len(picks),
        "sae_picked_share": float(sae_won.mean()),
        "baselines_auc": float(base_auc.mean()),
        "with_sae_auc": float(all_auc.mean()),
    }


def regime_metrics(rows: pl.DataFrame, n_boot: int, seed: int) -> dict:
    means = rows.group_by("probe").agg(pl.col("roc_auc").mean()).sort("probe")
    out = {
        "mean_auc": {p: round(float(v), 4) for p, v in means.iter_rows() if v is not None},
        "fits": rows.height,
        "datasets": {},
    }
    for (dataset,), part in sorted(rows.group_by(["test_dataset"]), key=lambda g: g[0]):
        out["datasets"][dataset] = compare_best(part, n_boot, seed)
    for kind in ("baseline", "sae"):
        values = [
            d[f"best_{kind}"]["roc_auc"]
            for d in out["datasets"].values()
            if f"best_{kind}" in d and d[f"best_{kind}"]["roc_auc"] is not None
        ]
        out[f"best_{kind}_mean_auc"] = float(np.mean(values)) if values else None
    out["quiver"] = quiver(rows)
    return out


def summarize(results: pl.DataFrame, n_boot: int, seed: int) -> dict[str, dict]:
    labelled = with_labels(results)
    metrics = {}
    for (regime,), rows in labelled.group_by(["regime"]):
        metrics[regime] = regime_metrics(rows, n_boot, seed)
    skipped = results.filter(pl.col("status") != "ok")
    for regime in metrics:
        part = skipped.filter(pl.col("regime") == regime)
        metrics[regime]["not_fitted"] = part.height
        metrics[regime]["not_fitted_reasons"] = sorted(set(part["message"].drop_nulls()))[:20]
    return metrics


def level_curve(results: pl.DataFrame, regime: str) -> pl.DataFrame:
    """Mean test AUC per probe and level over data sets and seeds: x=level, series=probe."""
    rows = with_labels(results).filter(pl.col("regime") == regime)
    return (
        rows.group_by(["probe", "level"])
        .agg(pl.col("roc_auc").mean())
        .rename({"probe": "series"})
        .sort(["series", "level"])
    )


def layer_curve(results: pl.DataFrame) -> pl.DataFrame:
    rows = with_labels(results).filter((pl.col("regime") == "normal") & (pl.col("layer") >= 0))
    return (
        rows.with_columns((pl.col("representation") + "/" + pl.col("method")).alias("series"))
        .group_by(["series", "layer"])
        .agg(pl.col("roc_auc").mean())
        .sort(["series", "layer"])
    )


def sae_k_curve(results: pl.DataFrame) -> pl.DataFrame:
    rows = with_labels(results).filter(
        (pl.col("regime") == "normal") & pl.col("method").str.starts_with("sae_top")
    )
    return (
        rows.with_columns(
            pl.col("method").str.strip_prefix("sae_top").cast(pl.Int64).alias("k"),
            (pl.lit("L") + pl.col("layer").cast(pl.String) + "/" + pl.col("representation")).alias(
                "series"
            ),
        )
        .group_by(["series", "k"])
        .agg(pl.col("roc_auc").mean())
        .sort(["series", "k"])
    )


def binarized_bars(results: pl.DataFrame) -> pl.DataFrame:
    """Best top-k SAE probe per data set, continuous against binarized features."""
    rows = with_labels(results).filter(
        (pl.col("regime") == "normal") & pl.col("representation").str.starts_with(SAE_PREFIX)
    )
    return (
        rows.with_columns(
            pl.when(pl.col("representation").str.ends_with("_bin"))
            .then(pl.lit("binarized"))
            .otherwise(pl.lit("continuous"))
            .alias("features")
        )
        .group_by(["test_dataset", "features", "probe"])
        .agg(pl.col("roc_auc").mean())
        .group_by(["test_dataset", "features"])
        .agg(pl.col("roc_auc").max())
        .with_columns((pl.col("test_dataset") + "/" + pl.col("features")).alias("setting"))
        .sort("setting")
    )
