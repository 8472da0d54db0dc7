"""Self-regularization against its baselines: every method over seeds on one train/test
split, scored for accuracy, fairness and leakage, and summarized with intervals and paired
tests against the unregularized classifier (the paper's `report_results.py` reports mean,
std and `ttest_rel(alternative="greater")` over seeds)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch
from sklearn.metrics import accuracy_score, f1_score

from saeprobe.errors import ConfigError
from saeprobe.regularization.classifier import ClassifierConfig, train_classifier
from saeprobe.regularization.fairness import (
    demographic_parity_gap,
    equalized_odds_gap,
    leakage_auc,
)
from saeprobe.regularization.penalty import alignment_penalty, check_latents, remove_latents
from saeprobe.regularization.stats import paired_greater, summarize
from saeprobe.sae.base import SparseAutoencoder

# The baselines, each the plain classifier with one regularizer at the reference's setting.
BASELINES: dict[str, dict] = {
    "plain": {},
    "l2": {"l2": 1e-3},
    "dropout": {"dropout": 0.1},
    "focal": {"focal_gamma": 2.0},
    "label_smoothing": {"label_smoothing": 0.1},
    "spectral": {"spectral": 0.02},
}
# Self-regularization and its ablations: (remove the unintended latents, penalize them).
SELFREG: dict[str, tuple[bool, bool]] = {
    "selfreg": (True, True),
    "selfreg_removal": (True, False),
    "selfreg_penalty": (False, True),
}
# score_leakage: the attribute predicted from the classifier's probabilities;
# input_leakage: from its inputs (after removal, for the methods that remove).
METRICS = ("accuracy", "macro_f1", "dp_gap", "eo_gap", "score_leakage", "input_leakage")


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    group_test: np.ndarray | None = None  # the attribute, for fairness and leakage


def run_methods(
    split: Split,
    sae: SparseAutoencoder,
    unintended: np.ndarray,
    methods: list[str],
    lambdas: list[float],
    seeds: list[int],
    base: ClassifierConfig,
) -> pl.DataFrame:
    """One row per (method, lambda, seed): test metrics; lambda is NaN for baselines."""
    unknown = [m for m in methods if m not in BASELINES and m not in SELFREG]
    if unknown:
        known = sorted(BASELINES) + sorted(SELFREG)
        raise ConfigError(f"params: unknown selfreg method(s) {unknown}; expected {known}")
    n_classes = int(max(split.y_train.max(), split.y_test.max())) + 1
    latents = check_latents(sae, torch.as_tensor(unintended))
    removed = {False: (split.X_train, split.X_test)}
    if any(SELFREG.get(m, (False, False))[0] for m in methods):
        removed[True] = tuple(
            remove_latents(sae, torch.as_tensor(X, dtype=torch.float32), latents).numpy()
            for X in (split.X_train, split.X_test)
        )
    leak = {
        flag: leakage_auc(X_test, split.group_test, seeds[0])
        if split.group_test is not None and len(np.unique(split.group_test)) == 2
        else float("nan")
        for flag, (_, X_test) in removed.items()
    }
    rows = []
    for method in methods:
        remove, penalize = SELFREG.get(method, (False, False))
        cfg = replace(base, **BASELINES.get(method, {}))
        X_train, X_test = removed[remove]
        for lam in lambdas if penalize else [float("nan")]:
            penalty = (
                (lambda w, lam=lam: lam * alignment_penalty(sae, w, latents)) if penalize else None
            )
            for seed in seeds:
                fit = train_classifier(X_train, split.y_train, n_classes, cfg, seed, penalty)
                proba = fit.proba(X_test)
                rows.append(
                    {"method": method, "lambda": lam, "seed": seed}
                    | score(proba, split.y_test, split.group_test, seed)
                    | {"input_leakage": leak[remove], "unintended": len(latents)}
                    | {"best_epoch": fit.best_epoch}
                )
    return pl.DataFrame(rows)


def score(proba: np.ndarray, y: np.ndarray, group: np.ndarray | None, seed: int) -> dict:
    pred = proba.argmax(1)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
    fair = group is not None and proba.shape[1] == 2
    out["dp_gap"] = demographic_parity_gap(pred, group) if fair else float("nan")
    out["eo_gap"] = equalized_odds_gap(pred, y, group) if fair else float("nan")
    binary_group = group is not None and len(np.unique(group)) == 2
    out["score_leakage"] = leakage_auc(proba, group, seed) if binary_group else float("nan")
    return out


def summarize_methods(results: pl.DataFrame, reference: str = "plain") -> pl.DataFrame:
    """Per (method, lambda) and metric: mean, std, 95% CI, and the paired one-sided p-value
    that the method beats `reference` on the same seeds (higher accuracy and F1, smaller
    gaps and leakage)."""
    base = results.filter(pl.col("method") == reference).sort("seed")
    if base.height == 0:
        raise ConfigError(f"params: selfreg methods must include '{reference}' to compare with")
    rows = []
    for (method, lam), part in results.group_by("method", "lambda", maintain_order=True):
        part = part.sort("seed")
        if part["seed"].to_list() != base["seed"].to_list():
            raise ConfigError(f"selfreg: {method} ran other seeds than {reference}")
        for metric in METRICS:
            values, ref = part[metric].to_numpy(), base[metric].to_numpy()
            if np.isnan(values).all():
                continue
            higher_better = metric in ("accuracy", "macro_f1")
            p = paired_greater(values, ref) if higher_better else paired_greater(-values, -ref)
            rows.append(
                {"method": method, "lambda": lam, "metric": metric}
                | summarize(values)
                | {"p_vs_" + reference: p if method != reference else float("nan")}
            )
    return pl.DataFrame(rows)
