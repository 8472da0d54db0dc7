"""In-distribution AUC, transfer AUC and the drop between them, with intervals over seeds."""

from __future__ import annotations

import numpy as np
import polars as pl

from saeprobe.config import TransferPairConfig
from saeprobe.regularization.stats import summarize
from saeprobe.transfer.split import source_name


def interval(values: np.ndarray) -> dict[str, float]:
    """Mean, spread and Student-t 95% interval over seeds (the self-regularization stats)."""
    return summarize(values)


SETTING = ["layer", "representation", "pooling", "method"]


def family(representation: str, method: str) -> str:
    """The representation family a transfer row belongs to, for the headline."""
    if representation == "hidden":
        return "hidden"
    if representation == "text":
        return "tfidf"
    if method.startswith("mosaic"):
        return "mosaic"
    return "sae_binarized" if method.endswith("_bin") else "sae"


def summarize_transfer(results: pl.DataFrame, pair: TransferPairConfig) -> list[dict]:
    """Per setting: in-distribution AUC, transfer AUC and their paired drop, each with a
    95% interval over seeds; sorted by the drop, smallest first."""
    wide = (
        results.filter(pl.col("status") == "ok")
        .with_columns(
            pl.when(pl.col("test_dataset") == source_name(pair))
            .then(pl.lit("in_distribution"))
            .otherwise(pl.lit("transfer"))
            .alias("where")
        )
        .pivot(on="where", index=[*SETTING, "seed"], values="roc_auc")
        .sort([*SETTING, "seed"])
    )
    out = []
    for key, part in wide.group_by(SETTING, maintain_order=True):
        layer, representation, pooling, method = key
        in_auc = part["in_distribution"].to_numpy()
        moved = part["transfer"].to_numpy()
        out.append(
            {
                "layer": layer,
                "representation": representation,
                "pooling": pooling,
                "method": method,
                "family": family(representation, method),
                "seeds": len(part),
                "in_distribution": interval(in_auc),
                "transfer": interval(moved),
                "drop": interval(in_auc - moved),
            }
        )
    return sorted(out, key=lambda r: (r["drop"]["mean"], r["layer"], r["method"]))


def setting_label(row: dict) -> str:
    where = "text" if row["layer"] < 0 else f"L{row['layer']}"
    pooling = f" {row['pooling']}" if row["pooling"] else ""
    return f"{where} {row['representation']}{pooling} · {row['method']}"


def plot_rows(summary: list[dict]) -> pl.DataFrame:
    """One row per setting: in-distribution and transfer AUC and the drop (the DVC plot)."""
    return pl.DataFrame(
        {
            "setting": [setting_label(r) for r in summary],
            "family": [r["family"] for r in summary],
            "in_distribution": [r["in_distribution"]["mean"] for r in summary],
            "transfer": [r["transfer"]["mean"] for r in summary],
            "drop": [r["drop"]["mean"] for r in summary],
        },
        schema={
            "setting": pl.String,
            "family": pl.String,
            "in_distribution": pl.Float64,
            "transfer": pl.Float64,
            "drop": pl.Float64,
        },
    )
