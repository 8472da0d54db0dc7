"""Every probe, by name: hidden-state baselines, bag-of-words, and SAE-latent probes.

A method maps (X_train, y_train, X_test) to class probabilities on the test set, the chosen
hyper-parameters and the validation AUC that chose them. The registry `METHODS` holds each
method's kind (which representation it reads) and its fit function; the search spaces of
the grid-searched methods come from `probe.grids` in params."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from saeprobe import config
from saeprobe.config import ProbeConfig
from saeprobe.errors import ConfigError, Infeasible
from saeprobe.probes.validation import (
    logistic,
    proba_full,
    select_by_validation,
    select_logistic,
    validation_splits,
)


@dataclass
class Fit:
    proba: np.ndarray
    params: dict
    val_auc: float


@dataclass(frozen=True)
class FitContext:
    """What every fit shares besides its data."""

    cfg: ProbeConfig
    seed: int
    n_classes: int


FitFn = Callable[[Any, np.ndarray, Any, FitContext], Fit]


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # the representation it reads: hidden, text or sae (sae_top<k> is sae too)
    fit: FitFn  # grid-searched methods read their space from probe.grids (config.GRID_KEYS)


def rank_latents(X, y: np.ndarray) -> np.ndarray:
    """Latents ordered by how well their class means differ, after dividing each latent by
    its mean nonzero activation (so rare, large latents do not win on scale alone)."""
    X = sp.csr_matrix(X)
    nonzero = np.asarray((X != 0).sum(0)).ravel()
    mean_nonzero = np.asarray(X.sum(0)).ravel() / np.maximum(nonzero, 1)
    scale = np.where(mean_nonzero > 0, mean_nonzero, 1.0)
    score = np.zeros(X.shape[1])
    classes = np.unique(y)
    for c in classes if len(classes) > 2 else classes[1:]:
        inside = np.asarray(X[y == c].mean(0)).ravel()
        outside = np.asarray(X[y != c].mean(0)).ravel()
        score += np.abs(inside - outside) / scale
    return np.argsort(-score, kind="stable")


def _dense(X):
    return X.toarray() if sp.issparse(X) else X


def grid_points(spec: Any) -> list[dict]:
    """A list of mappings is the grid itself; a mapping of lists is their product."""
    if isinstance(spec, list):
        return [dict(point) for point in spec]
    keys = sorted(spec)
    values = itertools.product(*(spec[key] for key in keys))
    return [dict(zip(keys, point, strict=True)) for point in values]


def _logistic_fit(penalty: str) -> FitFn:
    def fit(X_train, y_train, X_test, ctx: FitContext) -> Fit:
        model, params, val = select_logistic(
            X_train, y_train, ctx.cfg.Cs, penalty, ctx.seed, ctx.n_classes
        )
        return Fit(proba_full(model, X_test, ctx.n_classes), params, val)

    return fit


def fit_top_k(k: int, X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """The top-k SAE probe: rank latents on the training set, fit on the k best."""
    if k > X_train.shape[1]:
        raise Infeasible(f"k = {k} is larger than the SAE width {X_train.shape[1]}")
    keep = rank_latents(X_train, y_train)[:k]
    fit = _logistic_fit("l2")(_dense(X_train[:, keep]), y_train, _dense(X_test[:, keep]), ctx)
    fit.params["latents"] = keep.tolist()
    return fit


def _grid_fit(name: str, make: Callable[[dict, FitContext, bool], Any]) -> FitFn:
    def fit(X_train, y_train, X_test, ctx: FitContext) -> Fit:
        n_fit = smallest_fit(y_train, ctx.seed)
        grid = _feasible(name, grid_points(ctx.cfg.grids[name]), n_fit, len(y_train), X_train)
        model, params, val = select_by_validation(
            lambda p: make(p, ctx, sp.issparse(X_train)),
            grid,
            X_train,
            y_train,
            ctx.seed,
            ctx.n_classes,
        )
        return Fit(proba_full(model, X_test, ctx.n_classes), params, val)

    return fit


def smallest_fit(y: np.ndarray, seed: int) -> int:
    """The fewest examples any fit of the search sees: the smallest validation-training fold
    (or all of them, when there are too few to validate)."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    return min([len(y)] + [len(train) for train, _ in splits])


def _feasible(name: str, grid: list[dict], n_fit: int, n: int, X) -> list[dict]:
    """Drop grid points that the smallest fit cannot support (PCA dimensions, KNN neighbours),
    so that a small training set narrows the search instead of failing it."""
    if name == "pca":
        limit = min(n_fit - 1, X.shape[1])
        return [p for p in grid if p["n_components"] <= limit] or [{"n_components": 1}]
    if name == "knn":
        limit = max(1, min(n // 2, n_fit))
        return [p for p in grid if p["n_neighbors"] <= limit] or [{"n_neighbors": 1}]
    return grid


def _make_pca(p: dict, ctx: FitContext, sparse: bool):
    reducer = TruncatedSVD if sparse else PCA
    return make_pipeline(
        reducer(n_components=p["n_components"], random_state=ctx.seed),
        logistic(1.0, "l2", ctx.seed, ctx.n_classes),
    )


def _make_knn(p: dict, ctx: FitContext, sparse: bool):
    return make_pipeline(
        StandardScaler(with_mean=not sparse), KNeighborsClassifier(n_neighbors=p["n_neighbors"])
    )


def _make_mlp(p: dict, ctx: FitContext, sparse: bool):
    mlp = MLPClassifier(
        tuple(p["hidden_layer_sizes"]), alpha=p["alpha"], max_iter=200, random_state=ctx.seed
    )
    return make_pipeline(StandardScaler(with_mean=not sparse), mlp)


def _make_tree(p: dict, ctx: FitContext, sparse: bool):
    return DecisionTreeClassifier(max_depth=p["max_depth"], random_state=ctx.seed)


def _make_tfidf(p: dict, ctx: FitContext, sparse: bool):
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        logistic(p["C"], "l2", ctx.seed, ctx.n_classes),
    )


def fit_xgboost(X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """A small random search: `trials` seeded draws from the space in probe.grids.xgboost."""
    from xgboost import XGBClassifier

    space = dict(ctx.cfg.grids["xgboost"])
    trials = int(space.pop("trials"))
    rng = np.random.default_rng(ctx.seed)
    grid = [
        {k: _plain(v[rng.integers(len(v))]) for k, v in sorted(space.items())}
        for _ in range(trials)
    ]

    def make(p):
        return XGBClassifier(
            **p, n_jobs=1, tree_method="hist", random_state=ctx.seed, eval_metric="logloss"
        )

    model, params, val = select_by_validation(make, grid, X_train, y_train, ctx.seed, ctx.n_classes)
    return Fit(proba_full(model, X_test, ctx.n_classes), params, val)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("logreg_l2", "hidden", _logistic_fit("l2")),
        Method("logreg_l1", "hidden", _logistic_fit("l1")),
        Method("pca", "hidden", _grid_fit("pca", _make_pca)),
        Method("knn", "hidden", _grid_fit("knn", _make_knn)),
        Method("xgboost", "hidden", fit_xgboost),
        Method("mlp", "hidden", _grid_fit("mlp", _make_mlp)),
        Method("tree", "hidden", _grid_fit("tree", _make_tree)),
        Method("tfidf", "text", _grid_fit("tfidf", _make_tfidf)),
        Method("sae_l1", "sae", _logistic_fit("l1")),
    )
}
# The registry implements exactly the names params may use (sae_topk expands to sae_top<k>).
assert set(METHODS) | {"sae_topk"} == set(
    config.HIDDEN_METHODS + config.TEXT_METHODS + config.SAE_METHODS
)


def fit_method(method: str, X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """Fit one method; `sae_top<k>` is the top-k latent probe with that k."""
    if method.startswith("sae_top"):
        return fit_top_k(int(method.removeprefix("sae_top")), X_train, y_train, X_test, ctx)
    if method not in METHODS:
        raise ConfigError(
            f"params: unknown probe method '{method}'{config.suggest(method, METHODS)}"
        )
    return METHODS[method].fit(X_train, y_train, X_test, ctx)
