"""From the results table to what a reviewer asks for: means with bootstrap 95% intervals,
the best SAE probe against the best baseline (paired over seeds), the quiver, and curves."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats

from saeprobe.config import ProbeReportConfig

SAE_PREFIX = "sae"
MOSAIC = "mosaic_"


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
    """Only fitted rows, with `probe` = L<layer>/<representation>/<method> (the
    representation marked @<pooling> on the pooling comparison's rows) and `is_sae`."""
    ok = results.filter(pl.col("status") == "ok")
    representation = (
        pl.when(pl.col("pooling_comparison").fill_null(False))
        .then(pl.col("representation") + pl.lit("@") + pl.col("pooling"))
        .otherwise(pl.col("representation"))
    )
    return ok.with_columns(
        pl.when(pl.col("layer") >= 0)
        .then(pl.lit("L") + pl.col("layer").cast(pl.String) + pl.lit("/"))
        .otherwise(pl.lit(""))
        .add(representation + pl.lit("/") + pl.col("method"))
        .alias("probe"),
        pl.col("representation").str.starts_with(SAE_PREFIX).alias("is_sae"),
    )


def paper_probes(rows: pl.DataFrame, cfg: ProbeReportConfig) -> pl.DataFrame:
    """The sparse-probing paper's candidates: one layer, its baselines on hidden states and
    the top-k SAE probes with its k, at the main pooling."""
    top_k = [f"sae_top{k}" for k in cfg.quiver_sae_k]
    saes = [f"{SAE_PREFIX}_{name}" for name in cfg.quiver_saes]
    return rows.filter(
        (pl.col("layer") == cfg.quiver_layer)
        & ~pl.col("pooling_comparison").fill_null(False)
        & (
            ((pl.col("representation") == "hidden") & pl.col("method").is_in(cfg.quiver_baselines))
            | (pl.col("representation").is_in(saes) & pl.col("method").is_in(top_k))
        )
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
    """Best baseline and best SAE probe of one data set at one level, and a paired t-test
    over seeds."""
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
    """The paper's quiver of arrows (its `arrow_quiver_normal` and `quiver_arrows_*`): per
    data set and seed of one level, pick the probe with the best validation AUC among the
    baselines only, and among baselines plus SAE probes (an SAE probe wins a tie, as the
    paper sorts them first); how often an SAE probe is picked, and both quivers' mean test
    AUC."""
    picks = []
    for _key, part in rows.group_by(["test_dataset", "seed"], maintain_order=True):
        part = part.filter(pl.col("val_auc").is_not_null() & pl.col("val_auc").is_not_nan())
        part = part.sort(["val_auc", "is_sae", "probe"], descending=[True, True, False])
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


def comparison(rows: pl.DataFrame, n_boot: int, seed: int) -> dict:
    """Best baseline against best SAE probe per data set, their means, and the quiver, for
    the rows of one level."""
    out: dict = {"datasets": {}}
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


MEAN_KEYS = ("best_baseline_mean_auc", "best_sae_mean_auc")
QUIVER_KEYS = ("sae_picked_share", "baselines_auc", "with_sae_auc")


def mean_over_levels(levels: list[dict]) -> dict:
    """The per-level figures averaged over the levels where they exist."""

    def mean(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    out: dict = {key: mean([lv.get(key) for lv in levels]) for key in MEAN_KEYS}
    out["quiver"] = {key: mean([lv["quiver"].get(key) for lv in levels]) for key in QUIVER_KEYS}
    return out


def level_key(level: float | None) -> str:
    return "default" if level is None else f"{level:g}"


def regime_metrics(rows: pl.DataFrame, n_boot: int, seed: int, cfg: ProbeReportConfig) -> dict:
    """Per level: the paper's comparison (its candidate probes) and ours over every probe;
    then both averaged over the levels. Levels are never mixed: a validation AUC at two
    training examples says nothing next to one at 256."""
    means = rows.group_by("probe").agg(pl.col("roc_auc").mean()).sort("probe")
    out: dict = {
        "mean_auc": {p: round(float(v), 4) for p, v in means.iter_rows() if v is not None},
        "fits": rows.height,
        "levels": {},
    }
    paper_rows = paper_probes(rows, cfg)
    by_level = sorted(rows.group_by(["level"]), key=lambda g: (g[0][0] is not None, g[0][0]))
    for (level,), part in by_level:
        paper = paper_rows.filter(
            pl.col("level").is_null() if level is None else pl.col("level") == level
        )
        out["levels"][level_key(level)] = {
            "paper": comparison(paper, n_boot, seed),
            "all_probes": comparison(part, n_boot, seed),
        }
    levels = list(out["levels"].values())
    out["mean_over_levels"] = {
        name: mean_over_levels([lv[name] for lv in levels]) for name in ("paper", "all_probes")
    }
    return out


def pooling_comparison(rows: pl.DataFrame) -> dict:
    """Normal regime: mean test AUC of each compared probe at each pooling (MOSAIC's
    pooling comparison); the main pooling's rows are those not marked as comparisons."""
    compared = rows.filter(
        pl.col("pooling_comparison").fill_null(False) & ~pl.col("method").str.starts_with(MOSAIC)
    )
    if compared.is_empty():
        return {}
    keys = compared.select("layer", "representation", "method").unique()
    part = rows.join(keys, on=["layer", "representation", "method"])
    table = (
        part.with_columns(
            (
                pl.lit("L")
                + pl.col("layer").cast(pl.String)
                + "/"
                + pl.col("representation")
                + "/"
                + pl.col("method")
            ).alias("series")
        )
        .group_by(["series", "pooling"])
        .agg(pl.col("roc_auc").mean())
        .sort(["series", "pooling"])
    )
    out: dict = {}
    for series, pooling, value in table.iter_rows():
        out.setdefault(series, {})[pooling] = round(float(value), 4)
    return out


def mosaic_table(rows: pl.DataFrame) -> pl.DataFrame:
    """Normal regime, MOSAIC's setting: mean test AUC and macro-F1 of each of its classifiers
    per SAE, top-n and threshold (`setting` = L<layer>/<sae>/<method>@top<n>><threshold>)."""
    part = rows.filter((pl.col("regime") == "normal") & pl.col("method").str.starts_with(MOSAIC))
    return (
        part.with_columns(
            (
                pl.lit("L")
                + pl.col("layer").cast(pl.String)
                + "/"
                + pl.col("representation")
                + "/"
                + pl.col("method")
                + "@"
                + pl.col("pooling")
            ).alias("setting")
        )
        .group_by("setting")
        .agg(pl.col("roc_auc").mean(), pl.col("macro_f1").mean())
        .sort("setting")
    )


def summarize(
    results: pl.DataFrame, n_boot: int, seed: int, cfg: ProbeReportConfig | None = None
) -> dict[str, dict]:
    cfg = cfg or ProbeReportConfig()
    labelled = with_labels(results)
    metrics = {}
    for (regime,), rows in labelled.group_by(["regime"]):
        metrics[regime] = regime_metrics(rows, n_boot, seed, cfg)
        if regime == "normal":
            metrics[regime]["pooling"] = pooling_comparison(rows)
            metrics[regime]["mosaic"] = {
                setting: {"roc_auc": round(auc_, 4), "macro_f1": round(f1, 4)}
                for setting, auc_, f1 in mosaic_table(rows).iter_rows()
            }
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
    rows = with_labels(results).filter(
        (pl.col("regime") == "normal")
        & (pl.col("layer") >= 0)
        & ~pl.col("pooling_comparison").fill_null(False)
    )
    return (
        rows.with_columns((pl.col("representation") + "/" + pl.col("method")).alias("series"))
        .group_by(["series", "layer"])
        .agg(pl.col("roc_auc").mean())
        .sort(["series", "layer"])
    )


def sae_k_curve(results: pl.DataFrame) -> pl.DataFrame:
    rows = with_labels(results).filter(
        (pl.col("regime") == "normal")
        & pl.col("method").str.starts_with("sae_top")
        & ~pl.col("pooling_comparison").fill_null(False)
    )
    binarized = pl.col("method").str.ends_with("_bin")
    return (
        rows.with_columns(
            pl.col("method")
            .str.strip_prefix("sae_top")
            .str.strip_suffix("_bin")
            .cast(pl.Int64)
            .alias("k"),
            (
                pl.lit("L")
                + pl.col("layer").cast(pl.String)
                + "/"
                + pl.col("representation")
                + pl.when(binarized).then(pl.lit("/binarized")).otherwise(pl.lit(""))
            ).alias("series"),
        )
        .group_by(["series", "k"])
        .agg(pl.col("roc_auc").mean())
        .sort(["series", "k"])
    )


def binarized_bars(results: pl.DataFrame) -> pl.DataFrame:
    """Best top-k SAE probe per data set, continuous against binarized kept latents."""
    rows = with_labels(results).filter(
        (pl.col("regime") == "normal")
        & pl.col("method").str.starts_with("sae_top")
        & ~pl.col("pooling_comparison").fill_null(False)
    )
    return (
        rows.with_columns(
            pl.when(pl.col("method").str.ends_with("_bin"))
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


def pooling_bars(results: pl.DataFrame) -> pl.DataFrame:
    """Normal regime, the pooling comparison as bars: one per compared probe and pooling."""
    rows = with_labels(results).filter(pl.col("regime") == "normal")
    table = pooling_comparison(rows)
    return pl.DataFrame(
        [
            {"setting": f"{series}@{pooling}", "roc_auc": value}
            for series, values in table.items()
            for pooling, value in values.items()
        ],
        schema={"setting": pl.String, "roc_auc": pl.Float64},
    )


def mosaic_bars(results: pl.DataFrame) -> pl.DataFrame:
    """MOSAIC's setting as bars: test AUC and macro-F1 per classifier, SAE, top-n and
    threshold (normal regime)."""
    return mosaic_table(with_labels(results))
