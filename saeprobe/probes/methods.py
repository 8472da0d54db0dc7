"""Every probe, by name: hidden-state baselines, bag-of-words, and SAE-latent probes.

A method maps (X_train, y_train, X_test) to class probabilities on the test set, the chosen
hyper-parameters and the validation AUC that chose them. The registry `METHODS` holds each
method's kind (which representation it reads) and its fit function. The sparse-probing
paper's probes (logistic regression, PCA, KNN, XGBoost, MLP, the top-k SAE probe) follow its
reference code, `sae_probes.utils_training.find_best_*` and `run_sae_evals.run_sae_eval`;
their search spaces come from `probe.grids` in params."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import NearestNeighbors
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from saeprobe import config
from saeprobe.config import ProbeConfig
from saeprobe.errors import ConfigError, Infeasible
from saeprobe.probes.validation import (
    auc,
    fit_quietly,
    fit_quietly_call,
    logistic,
    proba_full,
    select_by_validation,
    select_logistic,
    select_width_batch,
    validation_splits,
)


@dataclass
class Fit:
    proba: np.ndarray
    params: dict
    val_auc: float
    model: Any = None  # the fitted estimator, where a caller keeps it (saved classifiers)


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
    fit: FitFn  # searched methods read their space from probe.grids (config.GRID_KEYS)


def rank_latents(X, y: np.ndarray) -> np.ndarray:
    """Latents by |difference of class means| after dividing each latent by its mean
    nonzero |activation|, as `sae_probes.run_sae_evals.get_sorted_indices` with
    `mean_act_normalization` does (so rare, large latents do not win on scale alone). With
    more than two classes (our extension) the one-vs-rest differences are summed. Sparse
    codes stay sparse and dense ones dense: converting them costs more than the ranking."""
    X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
    classes = np.unique(y)
    members = (y[:, None] == classes[None, :]).astype(np.float64)  # (n, classes)
    if sp.issparse(X):
        nonzero = np.asarray((X != 0).sum(0)).ravel()
        magnitude = np.asarray(abs(X).sum(0)).ravel()
        sums = np.asarray(X.T @ members).T  # each class's column sums, one pass over X
    else:
        nonzero = _nonzero_counts(X)
        sums = members.T @ X
        # Codes of a ReLU or top-k SAE are nonnegative: their |sum| is the sum of the
        # classes' sums, without another pass over a wide matrix (or the copy abs() makes).
        magnitude = sums.sum(0) if X.min(initial=0.0) >= 0 else np.abs(X).sum(0)
    scale = magnitude / (nonzero + 1e-6) + 1e-6
    total, counts = sums.sum(0), members.sum(0)
    score = np.zeros(X.shape[1])
    for i in range(len(classes)) if len(classes) > 2 else range(1, len(classes)):
        inside = sums[i] / counts[i]
        outside = (total - sums[i]) / (len(y) - counts[i])
        score += np.abs(inside - outside) / scale
    return np.argsort(-score, kind="stable")


def _nonzero_counts(X: np.ndarray) -> np.ndarray:
    """Each column's nonzero entries. The mask's bytes are summed in 16 bits, a block of at
    most 65,535 rows at a time: numpy casts every byte to a wider accumulator, so a 16-bit
    one sums six times faster than a 64-bit one."""
    mask = (X != 0).view(np.uint8)
    block = np.iinfo(np.uint16).max
    counts = np.zeros(X.shape[1], dtype=np.int64)
    for start in range(0, len(mask), block):
        counts += mask[start : start + block].sum(0, dtype=np.uint16)
    return counts


def _dense(X):
    return X.toarray() if sp.issparse(X) else X


def grid_points(spec: Any) -> list[dict]:
    """A list of mappings is the grid itself; a mapping of lists is their product."""
    if isinstance(spec, list):
        return [dict(point) for point in spec]
    keys = sorted(spec)
    values = itertools.product(*(spec[key] for key in keys))
    return [dict(zip(keys, point, strict=True)) for point in values]


def log2_grid(cap: int, points: int) -> list[int]:
    """`points` log2-spaced integers from 1 to cap, deduplicated, as the reference's PCA and
    KNN searches space them."""
    return np.unique(np.logspace(0, np.log2(cap), num=points, base=2, dtype=int)).tolist()


def _logistic_fit(penalty: str) -> FitFn:
    def fit(X_train, y_train, X_test, ctx: FitContext) -> Fit:
        model, params, val = select_logistic(
            X_train,
            y_train,
            ctx.cfg.Cs,
            penalty,
            ctx.seed,
            ctx.n_classes,
            ctx.cfg.l1_solver,
            ctx.cfg.l2_solver,
        )
        return Fit(proba_full(model, X_test, ctx.n_classes), params, val, model)

    return fit


def fit_top_k(k: int, binarize: bool, X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """The top-k SAE probe of `sae_probes.run_sae_evals.run_sae_eval`: rank latents on the
    continuous training codes, keep the k best, fit L1 logistic regression on them. The
    binarized probe binarizes the kept latents (> probe.binarize_threshold) after the
    selection, as the paper's `train_sae_probes.run_baseline` does."""
    if k > X_train.shape[1]:
        raise Infeasible(f"k = {k} is larger than the SAE width {X_train.shape[1]}")
    keep = rank_latents(X_train, y_train)[:k]
    X_fit, X_eval = _dense(X_train[:, keep]), _dense(X_test[:, keep])
    if binarize:
        threshold = ctx.cfg.binarize_threshold
        X_fit = (X_fit > threshold).astype(np.float64)
        X_eval = (X_eval > threshold).astype(np.float64)
    fit = _logistic_fit("l1")(X_fit, y_train, X_eval, ctx)
    fit.params["latents"] = keep.tolist()
    return fit


def fit_pca(X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """`find_best_pcareg`: standardize, fit PCA once on all training data, then choose the
    number of leading components (log2 grid up to min(n, d, max_components)) for a default
    logistic regression by validation AUC. The PCA solver is the one scikit-learn picks, as in
    the reference (randomized for these sizes), seeded so that the fit is deterministic.
    With `probe.l2_solver: batch` the logistic fits of every width and fold run as one
    batched lbfgs (`select_width_batch`)."""
    space = ctx.cfg.grids["pca"]
    scaler = StandardScaler().fit(X_train)
    n_max = min(X_train.shape[0], X_train.shape[1], space["max_components"])
    S_train = scaler.transform(X_train)
    pca = PCA(n_components=n_max, random_state=ctx.seed).fit(S_train)
    Z_train = pca.transform(S_train)
    Z_test = pca.transform(scaler.transform(X_test))
    grid = [{"n_components": n} for n in log2_grid(n_max, space["points"])]
    if len(y_train) <= 3:  # too few to validate: every component, as the reference does
        grid = [{"n_components": n_max}]
    if ctx.cfg.l2_solver == "batch":  # every width on every fold in one lbfgs run
        widths = [p["n_components"] for p in grid]
        model, params, val = select_width_batch(Z_train, y_train, widths, ctx.seed, ctx.n_classes)
    else:
        model, params, val = select_by_validation(
            lambda p: logistic(1.0, "l2", ctx.seed, ctx.n_classes),
            grid,
            Z_train,
            y_train,
            ctx.seed,
            ctx.n_classes,
            view=lambda p, Z: Z[:, : p["n_components"]],
        )
    Z_test = Z_test[:, : params["n_components"]]
    return Fit(proba_full(model, Z_test, ctx.n_classes), params, val)


def fit_knn(X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """`find_best_knn`: standardize, then choose k on a log2 grid up to the smallest
    validation-training fold (and max_neighbors) by validation AUC (the first of equals).
    Every k is scored from one neighbour query per fold with the largest k: the k nearest
    are the first k of the largest k's neighbours, so each k's class shares are running
    counts, equal to `KNeighborsClassifier(k).predict_proba` without a fit per k."""
    space = ctx.cfg.grids["knn"]
    scaler = StandardScaler().fit(X_train)
    Z_train, Z_test = scaler.transform(X_train), scaler.transform(X_test)
    splits = validation_splits(y_train, ctx.seed) if len(y_train) > 3 else []
    if not splits:  # too few examples to validate: k = 1, scored on the training data
        val = auc(y_train, knn_proba(Z_train, y_train, Z_train, [1], ctx.n_classes)[1])
        proba = knn_proba(Z_train, y_train, Z_test, [1], ctx.n_classes)[1]
        return Fit(proba, {"n_neighbors": 1}, val)
    smallest = min(len(train) for train, _ in splits)
    cap = max(1, min(len(y_train) - 1, space["max_neighbors"], smallest))
    ks = log2_grid(cap, space["points"])
    fold_scores = np.full((len(splits), len(ks)), np.nan)
    for i, (tr, va) in enumerate(splits):
        by_k = knn_proba(Z_train[tr], y_train[tr], Z_train[va], ks, ctx.n_classes)
        fold_scores[i] = [auc(y_train[va], by_k[k]) for k in ks]
    means = [np.nanmean(col) if np.isfinite(col).any() else -np.inf for col in fold_scores.T]
    best = ks[int(np.argmax(means))]
    proba = knn_proba(Z_train, y_train, Z_test, [best], ctx.n_classes)[best]
    return Fit(proba, {"n_neighbors": best}, float(max(means)))


def knn_proba(
    Z_fit: np.ndarray, y_fit: np.ndarray, Z_eval: np.ndarray, ks: list[int], n_classes: int
) -> dict[int, np.ndarray]:
    """Uniform-weight k-nearest-neighbour class shares on Z_eval for every k of `ks`."""
    neighbours = NearestNeighbors(n_neighbors=max(ks)).fit(Z_fit)
    nearest = neighbours.kneighbors(Z_eval, return_distance=False)
    counts = np.cumsum(np.eye(n_classes)[y_fit[nearest]], axis=1)
    return {k: counts[:, k - 1] / k for k in ks}


def draws(name: str, space: dict, seed: int) -> list[dict]:
    """`trials` random points of a search space, drawn key by key in the space's order with
    the random generator of the method's reference function (Python's `random` for
    `find_best_xgboost`, numpy's RandomState for `find_best_mlp`), so that one seed draws
    the same points as the reference."""
    keys = [key for key in config.GRID_KEYS[name] if key != "trials"]
    if name == "xgboost":
        py_rng = random.Random(seed)
        return [
            {key: py_rng.choice(list(space[key])) for key in keys} for _ in range(space["trials"])
        ]
    np_rng = np.random.RandomState(seed)
    return [
        {key: space[key][np_rng.randint(len(space[key]))] for key in keys}
        for _ in range(space["trials"])
    ]


def fit_xgboost(X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """`find_best_xgboost`: standardize, then the best of `trials` random draws from the
    space by validation AUC (the library's defaults with three or fewer examples)."""
    from xgboost import XGBClassifier

    scaler = StandardScaler().fit(X_train)
    Z_train, Z_test = scaler.transform(X_train), scaler.transform(X_test)
    grid = draws("xgboost", ctx.cfg.grids["xgboost"], ctx.seed) if len(y_train) > 3 else [{}]

    def make(p: dict):
        return XGBClassifier(
            **p, eval_metric="logloss", random_state=ctx.seed, n_jobs=1, tree_method="hist"
        )

    model, params, val = select_by_validation(make, grid, Z_train, y_train, ctx.seed, ctx.n_classes)
    return Fit(proba_full(model, Z_test, ctx.n_classes), _plain(params), val)


def fit_mlp(X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """`find_best_mlp`: standardize, then the best of `trials` random draws (relu, adam,
    at most 1000 iterations) by validation AUC; one hidden layer of 32 with three or fewer
    examples."""
    scaler = StandardScaler().fit(X_train)
    Z_train, Z_test = scaler.transform(X_train), scaler.transform(X_test)
    if len(y_train) > 3:
        grid = draws("mlp", ctx.cfg.grids["mlp"], ctx.seed)
    else:
        grid = [{"hidden_layer_sizes": [32]}]

    def make(p: dict):
        p = dict(p, hidden_layer_sizes=tuple(p["hidden_layer_sizes"]))
        return MLPClassifier(max_iter=1000, random_state=ctx.seed, **p)

    model, params, val = select_by_validation(make, grid, Z_train, y_train, ctx.seed, ctx.n_classes)
    return Fit(proba_full(model, Z_test, ctx.n_classes), _plain(params), val)


def _product_fit(name: str, make: Callable[[dict, FitContext], Any]) -> FitFn:
    def fit(X_train, y_train, X_test, ctx: FitContext) -> Fit:
        model, params, val = select_by_validation(
            lambda p: make(p, ctx),
            grid_points(ctx.cfg.grids[name]),
            X_train,
            y_train,
            ctx.seed,
            ctx.n_classes,
        )
        return Fit(proba_full(model, X_test, ctx.n_classes), params, val)

    return fit


def _mosaic_fit(make: Callable[[dict, FitContext], Any], name: str) -> FitFn:
    """MOSAIC's classifiers (its `ModelTrainer.train_linear_probe` and
    `train_decision_tree` with `TrainingConfig`'s grids): a grid search by 2-fold
    cross-validated accuracy (the first of equal points, as `GridSearchCV` ranks them), refit
    on all training data. The validation AUC recorded for the quiver is the chosen point's
    2-fold out-of-fold AUC.

    Where MOSAIC's versions differ we take: the linear probe class-weighted (balanced), as
    its later PyTorch probe weights its loss, but fitted to convergence on the grid rather
    than by Adam with early stopping; liblinear one-vs-rest on several classes with both
    penalties, where its scikit-learn version switched to L2-only solvers."""

    def fit(X_train, y_train, X_test, ctx: FitContext) -> Fit:
        grid = grid_points(ctx.cfg.grids[name])
        counts = np.bincount(y_train)
        if counts[counts > 0].min() < 2:  # 2-fold needs two of every class
            model = fit_quietly(make(grid[0], ctx), X_train, y_train)
            val = auc(y_train, proba_full(model, X_train, ctx.n_classes))
            return Fit(proba_full(model, X_test, ctx.n_classes), grid[0], val)
        folds = StratifiedKFold(2)
        accuracy = [
            fit_quietly_call(
                cross_val_score, make(p, ctx), X_train, y_train, cv=folds, scoring="accuracy"
            ).mean()
            for p in grid
        ]
        best = grid[int(np.argmax(accuracy))]
        oof = fit_quietly_call(
            cross_val_predict, make(best, ctx), X_train, y_train, cv=folds, method="predict_proba"
        )
        val = auc(y_train, _widen(oof, np.unique(y_train), ctx.n_classes))
        model = fit_quietly(make(best, ctx), X_train, y_train)
        return Fit(proba_full(model, X_test, ctx.n_classes), _plain(best), val)

    return fit


def _widen(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(proba), n_classes))
    out[:, classes] = proba
    return out


def _make_mosaic_linear(p: dict, ctx: FitContext):
    model = LogisticRegression(
        C=p["C"],
        l1_ratio=1.0 if p["penalty"] == "l1" else 0.0,
        solver="liblinear",
        class_weight="balanced",
        max_iter=1000,
        random_state=ctx.seed,
    )
    # liblinear is one-vs-rest on several classes, as MOSAIC's scikit-learn ran it
    # implicitly; scikit-learn >= 1.8 wants the wrapper spelled out.
    return OneVsRestClassifier(model) if ctx.n_classes > 2 else model


def _make_mosaic_tree(p: dict, ctx: FitContext):
    return DecisionTreeClassifier(**p, random_state=ctx.seed)


def _make_tree(p: dict, ctx: FitContext):
    return DecisionTreeClassifier(max_depth=p["max_depth"], random_state=ctx.seed)


def _make_tfidf(p: dict, ctx: FitContext):
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=p["C"], max_iter=1000, random_state=ctx.seed),
    )


def _plain(params: dict) -> dict:
    return {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("logreg_l2", "hidden", _logistic_fit("l2")),
        Method("logreg_l1", "hidden", _logistic_fit("l1")),
        Method("pca", "hidden", fit_pca),
        Method("knn", "hidden", fit_knn),
        Method("xgboost", "hidden", fit_xgboost),
        Method("mlp", "hidden", fit_mlp),
        Method("tree", "hidden", _product_fit("tree", _make_tree)),
        Method("tfidf", "text", _product_fit("tfidf", _make_tfidf)),
        Method("sae_l1", "sae", _logistic_fit("l1")),
        Method("mosaic_linear", "mosaic", _mosaic_fit(_make_mosaic_linear, "mosaic_linear")),
        Method("mosaic_tree", "mosaic", _mosaic_fit(_make_mosaic_tree, "mosaic_tree")),
    )
}
# The registry implements exactly the names params may use (sae_topk and sae_topk_bin
# expand to sae_top<k> and sae_top<k>_bin).
assert set(METHODS) | {"sae_topk", "sae_topk_bin"} == set(
    config.HIDDEN_METHODS + config.TEXT_METHODS + config.SAE_METHODS + config.MOSAIC_METHODS
)


def top_k_of(method: str) -> tuple[int, bool] | None:
    """(k, binarized) of a `sae_top<k>` or `sae_top<k>_bin` method name, else None."""
    if not method.startswith("sae_top"):
        return None
    binarize = method.endswith("_bin")
    return int(method.removeprefix("sae_top").removesuffix("_bin")), binarize


def fit_method(method: str, X_train, y_train, X_test, ctx: FitContext) -> Fit:
    """Fit one method; `sae_top<k>[_bin]` is the top-k latent probe with that k."""
    top_k = top_k_of(method)
    if top_k is not None:
        return fit_top_k(*top_k, X_train, y_train, X_test, ctx)
    if method not in METHODS:
        raise ConfigError(
            f"params: unknown probe method '{method}'{config.suggest(method, METHODS)}"
        )
    return METHODS[method].fit(X_train, y_train, X_test, ctx)
