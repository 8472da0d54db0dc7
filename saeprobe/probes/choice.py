"""Which probe of a data set's sweep to keep as its classifier, refit on every training
document (the classifier stage; saved by saeprobe.classifier)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from saeprobe.errors import ConfigError
from saeprobe.probes.methods import FitContext, fit_top_k, top_k_of
from saeprobe.probes.validation import auc


@dataclass(frozen=True)
class ProbeChoice:
    """Which of a sweep's SAE probes to keep: the best mean validation AUC over seeds."""

    layer: int
    sae: str  # the SAE variant: pretrained or finetuned
    method: str  # sae_top<k>
    val_auc: float


def choose_probe(results: pl.DataFrame, sae_pooling: str, dataset: str) -> ProbeChoice:
    """The normal regime's continuous top-k SAE probe with the best mean validation AUC over
    seeds (at the main SAE pooling), across layers, SAEs and k. Ties go to the smaller k,
    then the earlier layer (the simpler explanation), then the pretrained SAE."""
    rows = results.filter(
        (pl.col("regime") == "normal")
        & (pl.col("status") == "ok")
        & pl.col("representation").str.starts_with("sae_")
        & (pl.col("pooling") == sae_pooling)
        & ~pl.col("pooling_comparison")
        & pl.col("method").str.starts_with("sae_top")
        & ~pl.col("method").str.ends_with("_bin")
    )
    if rows.is_empty():
        raise ConfigError(
            f"data set '{dataset}': its probe results hold no fitted top-k SAE probe in the "
            "normal regime; add sae_topk to probe.sae_methods"
        )
    means = (
        rows.group_by("layer", "representation", "method", maintain_order=True)
        .agg(pl.col("val_auc").mean())
        .with_columns(pl.col("method").str.extract(r"sae_top(\d+)").cast(pl.Int64).alias("k"))
        .sort(["val_auc", "k", "layer", "representation"], descending=[True, False, False, True])
    )
    best = means.row(0, named=True)
    return ProbeChoice(
        layer=int(best["layer"]),
        sae=best["representation"].removeprefix("sae_"),
        method=best["method"],
        val_auc=float(best["val_auc"]),
    )


def train_classifier(
    choice: ProbeChoice,
    codes: sp.csr_matrix,
    labels: np.ndarray,
    split: np.ndarray,
    ctx: FitContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict, float]:
    """Refit the chosen probe on every training document (its C chosen again by the
    paper's validation) and score it on the test split. Returns latents, coef, intercept,
    classes, the fit's params and the test AUC."""
    k, binarized = top_k_of(choice.method)
    train, test = split == "train", split == "test"
    fit = fit_top_k(k, binarized, codes[train], labels[train], codes[test], ctx)
    model = fit.model
    estimators = getattr(model, "estimators_", [model])  # one-vs-rest: one per class
    coef = np.vstack([np.asarray(e.coef_, dtype=np.float64) for e in estimators])
    intercept = np.concatenate([np.ravel(e.intercept_) for e in estimators]).astype(np.float64)
    classes = np.asarray(model.classes_, dtype=np.int64)
    test_auc = auc(labels[test], fit.proba, np.arange(ctx.n_classes))
    return np.asarray(fit.params["latents"]), coef, intercept, classes, fit.params, test_auc
