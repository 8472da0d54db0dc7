"""Fit every transfer probe once on a sample of one data set and score it on each test set
(the source's test split and the transfer target; for the cross-model stages, the one
test split)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from joblib import delayed
from sklearn.linear_model import LogisticRegression

from saeprobe.config import ProbeConfig, TransferConfig, TransferPairConfig
from saeprobe.errors import ConfigError, Infeasible
from saeprobe.probes.methods import METHODS, Fit, FitContext, fit_method
from saeprobe.probes.schema import results_frame
from saeprobe.probes.sweep import Representation, fit_summary, run_parallel, scores
from saeprobe.regimes import balanced
from saeprobe.transfer.split import TransferTarget, source_name, target_name

REGIME = "transfer"


@dataclass
class PairedRepresentation:
    """One representation of the source (`rep.X`) and the same one of the target, from
    the same model, layer, SAE and pooling."""

    rep: Representation
    target: np.ndarray | sp.csr_matrix


def methods_for(rep: Representation, cfg: TransferConfig) -> list[str]:
    """The transfer methods that read this representation: top-k SAE probes once per k."""
    names = []
    for method in cfg.methods:
        if method in ("sae_topk", "sae_topk_bin"):
            if rep.kind == "sae":
                suffix = "_bin" if method == "sae_topk_bin" else ""
                names += [f"sae_top{k}{suffix}" for k in cfg.sae_k]
        elif method == "mosaic_lr_c1":
            if rep.kind == "mosaic":
                names.append(method)
        elif METHODS[method].kind == rep.kind:
            names.append(method)
    return names


def fit_mosaic_lr_c1(X_train, y_train, X_eval, ctx: FitContext) -> Fit:
    """MOSAIC's cross-lingual classifier as its code fits it (`train_and_test` in
    senti_multilingual.py): scikit-learn's L2 logistic regression at its default C = 1,
    1,000 iterations, on the binarized top-n counts, with no search and no scaling."""
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    proba = np.zeros((X_eval.shape[0], ctx.n_classes))
    proba[:, model.classes_] = model.predict_proba(X_eval)
    return Fit(proba=proba, params={"C": 1.0}, val_auc=float("nan"))


def fit_transfer_method(method: str, X_train, y_train, X_eval, ctx: FitContext) -> Fit:
    if method == "mosaic_lr_c1":
        return fit_mosaic_lr_c1(X_train, y_train, X_eval, ctx)
    return fit_method(method, X_train, y_train, X_eval, ctx)


def stack(a, b):
    if sp.issparse(a):
        return sp.vstack([a, b], format="csr")
    if a.dtype == object:
        return np.concatenate([a, b])
    return np.vstack([a, b])


@dataclass
class Evaluation:
    """A named test set: the representation's rows for it and their labels."""

    name: str
    X: np.ndarray | sp.csr_matrix
    y: np.ndarray


@dataclass
class FitJob:
    """One representation's methods, fit once on a training sample, scored on each test set."""

    seed: int
    rep: Representation
    methods: list[str]
    train: np.ndarray
    evaluations: list[Evaluation]


def run_transfer(
    pair: TransferPairConfig,
    source: pl.DataFrame,
    target: TransferTarget,
    reps: list[PairedRepresentation],
    cfg: TransferConfig,
    probe_cfg: ProbeConfig,
    base_seed: int,
) -> pl.DataFrame:
    """Every (seed, representation, method): one fit on a seeded, class-balanced sample of
    the source's training split, scored on the source's test split and on the target."""
    y = source["label"].to_numpy()
    split = source["split"].to_numpy()
    if pair.train_domain is not None:
        split = np.where(source["domain"].to_numpy() == pair.train_domain, split, "other")

    def evaluations(paired: PairedRepresentation, test: np.ndarray) -> list[Evaluation]:
        return [
            Evaluation(source_name(pair), paired.rep.X[test], y[test]),
            Evaluation(target_name(pair), paired.target[target.rows], target.labels),
        ]

    what = f"transfer {pair.train} -> {pair.test}: data set '{pair.train}'" + (
        f" (domain '{pair.train_domain}')" if pair.train_domain else ""
    )
    return fit_and_score(
        pair.train,
        y,
        split,
        reps,
        evaluations,
        cfg=cfg,
        probe_cfg=probe_cfg,
        base_seed=base_seed,
        regime=REGIME,
        what=what,
    )


def fit_and_score(
    train_dataset: str,
    y: np.ndarray,
    split: np.ndarray,
    reps: list[PairedRepresentation] | list[Representation],
    evaluations: Callable[[Any, np.ndarray], list[Evaluation]],
    *,
    cfg: TransferConfig,
    probe_cfg: ProbeConfig,
    base_seed: int,
    regime: str,
    what: str,
) -> pl.DataFrame:
    """Per seed a class-balanced sample of up to cfg.max_train rows of the `train` split;
    each representation's methods (transfer.methods) fit on it once and are scored on
    `evaluations(rep, test_rows)`. `reps` holds PairedRepresentation or Representation."""
    train_pool, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    if len(train_pool) == 0 or len(test) == 0:
        raise ConfigError(f"{what} has no training or no test rows")
    n_classes = int(y.max()) + 1
    jobs = []
    for s in range(cfg.seeds):
        seed = base_seed + s
        rng = np.random.default_rng(seed)
        train = balanced(train_pool, y, min(cfg.max_train, len(train_pool)), rng)
        for item in reps:
            rep = item.rep if isinstance(item, PairedRepresentation) else item
            methods = methods_for(rep, cfg)
            if methods:
                jobs.append(FitJob(seed, rep, methods, train, evaluations(item, test)))
    tasks = [delayed(_fit_job)(job, train_dataset, y, n_classes, probe_cfg, regime) for job in jobs]
    return results_frame([row for rows in run_parallel(tasks, probe_cfg) for row in rows])


def _fit_job(
    job: FitJob,
    train_dataset: str,
    y: np.ndarray,
    n_classes: int,
    probe_cfg: ProbeConfig,
    regime: str,
) -> list[dict]:
    rep = job.rep
    ctx = FitContext(cfg=probe_cfg, seed=job.seed, n_classes=n_classes)
    X_eval = stack_all([e.X for e in job.evaluations])
    bounds = np.cumsum([0] + [len(e.y) for e in job.evaluations])
    rows = []
    for method in job.methods:
        base = {
            "train_dataset": train_dataset,
            "layer": rep.layer,
            "representation": rep.name,
            "pooling": rep.pooling,
            "pooling_comparison": rep.comparison,
            "sae_task_docs": rep.task_docs,
            "method": method,
            "regime": regime,
            "level": None,
            "seed": job.seed,
            "n_train": len(job.train),
        }
        try:
            fit = fit_transfer_method(method, rep.X[job.train], y[job.train], X_eval, ctx)
        except Infeasible as exc:  # e.g. k above the SAE's width: recorded, as the sweep does
            rows += [
                base
                | {"test_dataset": e.name, "n_test": len(e.y)}
                | {"status": "skipped", "message": str(exc)}
                for e in job.evaluations
            ]
            continue
        base |= fit_summary(fit.params, fit.val_auc)
        for e, lo, hi in zip(job.evaluations, bounds[:-1], bounds[1:], strict=True):
            rows.append(
                base | {"test_dataset": e.name, "n_test": len(e.y)} | scores(e.y, fit.proba[lo:hi])
            )
    return rows


def stack_all(parts: list):
    out = parts[0]
    for part in parts[1:]:
        out = stack(out, part)
    return out
