"""Hyper-parameter selection as the sparse-probing paper does it: leave-2-out when n <= 12,
stratified 6-fold when n < 128, one holdout of min(20%, 100) examples above; score by
validation ROC-AUC; refit the best setting on all training data."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import LeavePOut, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier

Split = tuple[np.ndarray, np.ndarray]


def validation_splits(y: np.ndarray, seed: int) -> list[Split]:
    n = len(y)
    n_classes = len(np.unique(y))
    if n <= 12:
        splits = LeavePOut(2).split(np.zeros(n))
    elif n < 128:
        folds = min(6, int(np.bincount(y).max()))
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n), y)
    else:
        val = min(int(0.2 * n), 100)
        splits = [(np.arange(n - val), np.arange(n - val, n))]
    # A fold can only be scored if validation holds every class and training more than one.
    return [
        (tr, va)
        for tr, va in splits
        if len(np.unique(y[va])) == n_classes and len(np.unique(y[tr])) > 1
    ]


def auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Binary ROC-AUC, or macro one-vs-rest AUC for several classes; NaN if undefined."""
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    classes = np.arange(proba.shape[1]) if classes is None else classes
    scores = [roc_auc_score(y == c, proba[:, i]) for i, c in enumerate(classes) if c in present]
    return float(np.mean(scores))


def proba_full(model, X, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, also those absent from training."""
    proba = model.predict_proba(X)
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


def logistic(C: float, penalty: str, seed: int, n_classes: int, warm: bool = False):
    # liblinear solves the L1 problem two orders of magnitude faster than saga here.
    solver = "liblinear" if penalty == "l1" else "lbfgs"
    model = LogisticRegression(
        C=C,
        l1_ratio=1.0 if penalty == "l1" else 0.0,
        solver=solver,
        max_iter=1000,
        random_state=seed,
        warm_start=warm and solver == "lbfgs",
    )
    return OneVsRestClassifier(model) if n_classes > 2 else model


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(X, y)


def select_logistic(X, y, Cs: Sequence[float], penalty: str, seed: int, n_classes: int):
    """Best C by validation AUC, then refit. Within a fold, C runs from strong to weak
    regularization and each fit starts from the previous solution (warm start)."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    Cs = sorted(Cs)
    if not splits:  # too few examples to validate: the default C, scored on training data
        model = fit_quietly(logistic(1.0, penalty, seed, n_classes), X, y)
        return model, {"C": 1.0}, auc(y, proba_full(model, X, n_classes))
    warm = n_classes == 2 and penalty == "l2"
    scores = np.zeros((len(splits), len(Cs)))
    starts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, (tr, va) in enumerate(splits):
        model = logistic(Cs[0], penalty, seed, n_classes, warm=warm)
        for j, C in enumerate(Cs):
            if n_classes == 2:
                model.set_params(C=C)
            else:
                model.set_params(estimator__C=C)
            fit_quietly(model, X[tr], y[tr])
            scores[i, j] = auc(y[va], proba_full(model, X[va], n_classes))
            if warm:
                starts[j] = (model.coef_.copy(), model.intercept_.copy())
    mean = np.nanmean(scores, axis=0) if np.isfinite(scores).any() else np.zeros(len(Cs))
    best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else 0
    model = logistic(Cs[best], penalty, seed, n_classes, warm=warm)
    if warm:  # the refit on all data starts from the last fold's solution at that C
        model.coef_, model.intercept_ = starts[best]
    return fit_quietly(model, X, y), {"C": float(Cs[best])}, float(mean[best])


def select_by_validation(
    make: Callable[[dict], object], grid: Sequence[dict], X, y, seed: int, n_classes: int
):
    """Best of `grid` (estimator parameters) by mean validation AUC, refit on all data."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    if not splits or len(grid) == 1:
        model = fit_quietly(make(grid[0]), X, y)
        return model, dict(grid[0]), auc(y, proba_full(model, X, n_classes))
    means = []
    for params in grid:
        fold = []
        for tr, va in splits:
            model = fit_quietly(clone(make(params)), X[tr], y[tr])
            fold.append(auc(y[va], proba_full(model, X[va], n_classes)))
        means.append(np.nanmean(fold) if np.isfinite(fold).any() else -np.inf)
    best = int(np.argmax(means))
    model = fit_quietly(make(grid[best]), X, y)
    return model, dict(grid[best]), float(means[best])
