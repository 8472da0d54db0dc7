"""Hyper-parameter selection as the sparse-probing paper does it (`sae_probes.utils_training`
`get_cv` and `get_splits`): leave-2-out when n <= 12, stratified 6-fold when n < 128, one
holdout of min(20%, 100) examples above; score by validation ROC-AUC; refit the best setting
on all training data."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeavePOut, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier

from saeprobe.probes import lbfgs, path

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
        return binary_auc(y == present[-1], proba[:, 1])
    classes = np.arange(proba.shape[1]) if classes is None else classes
    scores = [binary_auc(y == c, proba[:, i]) for i, c in enumerate(classes) if c in present]
    return float(np.mean(scores))


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """`roc_auc_score(positive, score)` as the Mann-Whitney statistic: the share of
    (positive, negative) pairs ranked correctly, ties counting half (average ranks). The
    same number, without scikit-learn's input checks, which cost more than the AUC itself
    for the thousands of small validation folds a sweep scores."""
    return float(binary_aucs(positive, np.asarray(score)[:, None])[0])


def binary_aucs(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`binary_auc` of every column of `scores` (n, S), ranked in one call."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores, axis=0)
    return (ranks[positive].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def proba_full(model, X, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, also those absent from training."""
    proba = model.predict_proba(X)
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


def logistic(C: float, penalty: str, seed: int, n_classes: int, l1_solver: str = "saga"):
    """The reference's logistic regression: lbfgs for L2; for L1 saga with at most 1000
    epochs (`find_best_reg`), or liblinear (`probe.l1_solver`), which converges where saga
    stops short, at a tenth of the time or less."""
    if penalty == "l2":
        model = LogisticRegression(C=C, l1_ratio=0.0, max_iter=1000, random_state=seed)
    elif l1_solver == "saga":
        model = LogisticRegression(
            C=C, l1_ratio=1.0, solver="saga", max_iter=1000, random_state=seed
        )
    else:
        # liblinear penalizes the intercept like a weight; scaling its feature up makes that
        # penalty negligible, so it solves the problem saga solves.
        model = LogisticRegression(
            C=C,
            l1_ratio=1.0,
            solver="liblinear",
            intercept_scaling=100.0,
            max_iter=1000,
            random_state=seed,
        )
    return OneVsRestClassifier(model) if n_classes > 2 else model


def fit_quietly(model, X, y):
    return fit_quietly_call(model.fit, X, y)


def fit_quietly_call(function, *args, **kwargs):
    """Call a fitting function without the convergence chatter the reference also ignores."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        return function(*args, **kwargs)


def select_logistic(
    X,
    y,
    Cs: Sequence[float],
    penalty: str,
    seed: int,
    n_classes: int,
    l1_solver: str = "saga",
    l2_solver: str = "lbfgs",
):
    """`find_best_reg`: best C by validation AUC, then refit. Ties go to the largest C, as
    the reference's descending grid resolves them. Every fit starts cold, as the
    reference's do: lbfgs often stops short of the optimum on unscaled activations, and a
    warm start would stop somewhere else."""
    if penalty == "l1" and l1_solver == "path":
        return select_l1_path(X, y, Cs, seed, n_classes)
    if penalty == "l2" and l2_solver == "batch":
        return select_l2_batch(X, y, Cs, seed, n_classes)
    splits = validation_splits(y, seed) if len(y) > 3 else []
    Cs = sorted(Cs)
    if not splits:  # too few examples to validate: the default C, scored on training data
        model = fit_quietly(logistic(1.0, penalty, seed, n_classes, l1_solver), X, y)
        return model, {"C": 1.0}, auc(y, proba_full(model, X, n_classes))
    scores = np.zeros((len(splits), len(Cs)))
    for i, (tr, va) in enumerate(splits):
        for j, C in enumerate(Cs):
            model = fit_quietly(logistic(C, penalty, seed, n_classes, l1_solver), X[tr], y[tr])
            scores[i, j] = auc(y[va], proba_full(model, X[va], n_classes))
    mean = np.nanmean(scores, axis=0) if np.isfinite(scores).any() else np.zeros(len(Cs))
    best = last_argmax(mean)
    model = logistic(Cs[best], penalty, seed, n_classes, l1_solver)
    # The reference refits on the training set shuffled by the seed; an unconverged fit
    # depends on the row order, so the same order gives the same probe.
    order = np.random.RandomState(seed).permutation(len(y))
    return fit_quietly(model, X[order], y[order]), {"C": float(Cs[best])}, float(mean[best])


class LinearProbe:
    """A fitted logistic regression (one-vs-rest over several classes, its probabilities
    normalized as scikit-learn's OneVsRestClassifier does), for `proba_full`."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.coef_, self.intercept_, self.classes_ = coef, intercept, classes

    def scores(self, X) -> np.ndarray:
        """Each binary problem's probability of its class, one column a problem."""
        return expit(np.asarray(X @ self.coef_.T) + self.intercept_)

    def predict_proba(self, X) -> np.ndarray:
        scores = self.scores(X)
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - scores[:, 0], scores[:, 0]])
        total = scores.sum(1, keepdims=True)
        return np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1 / scores.shape[1])


def select_l1_path(X, y, Cs: Sequence[float], seed: int, n_classes: int, epochs: int = 1000):
    """`find_best_reg(penalty="l1")` with `probe.l1_solver: path`: every C on every
    validation fold, and on all training data, one-vs-rest for several classes, as one
    batched solve of the L1 problem with the L2 penalty that the reference's `epochs` of
    saga imply (`saeprobe.probes.path`). Selection as `select_logistic`: best mean
    validation AUC, ties to the largest C."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    Cs = sorted(Cs) if splits else [1.0]  # too few to validate: the default C
    folds = [np.ones(len(y), dtype=bool)] + [_rows(len(y), train) for train, _ in splits]
    batch = _Batch(y, folds, Cs)
    lam2 = {f: path.saga_budget_l2(X, folds[f], epochs) for f in range(len(folds))}
    solution = path.solve(
        X,
        path.Problems(
            targets=batch.targets,
            rows=batch.rows,
            lam1=np.array([1.0 / (C * folds[f].sum()) for f, C, _ in batch.problems]),
            lam2=np.array([lam2[f] for f, _, _ in batch.problems]),
        ),
    )
    if not splits:
        model = batch.probe(solution, 0, 1.0)
        return model, {"C": 1.0}, auc(y, proba_full(model, X, n_classes))
    mean = batch.validation_auc(solution, X, splits, n_classes, first_fold=1)
    best = last_argmax(mean)
    return batch.probe(solution, 0, Cs[best]), {"C": float(Cs[best])}, float(mean[best])


def select_l2_batch(X, y, Cs: Sequence[float], seed: int, n_classes: int):
    """`find_best_reg(penalty="l2")` with `probe.l2_solver: batch`: the reference's lbfgs
    fits of every C on every validation fold, one-vs-rest for several classes, as one
    batched run (`saeprobe.probes.lbfgs`). Selection as `select_logistic` (best mean
    validation AUC, ties to the largest C), and so is the refit: scikit-learn's own fit on
    the training set shuffled by the seed, the reference's probe itself."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    if not splits:  # too few to validate: as select_logistic
        return select_logistic(X, y, Cs, "l2", seed, n_classes)
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    Cs = sorted(Cs)
    batch = _Batch(y, [_rows(len(y), train) for train, _ in splits], Cs)
    mean = batch.validation_auc(batch.solve_lbfgs(X), X, splits, n_classes, first_fold=0)
    best = last_argmax(mean)
    order = np.random.RandomState(seed).permutation(len(y))
    model = fit_quietly(logistic(Cs[best], "l2", seed, n_classes), X[order], y[order])
    return model, {"C": float(Cs[best])}, float(mean[best])


def _rows(n: int, chosen: np.ndarray) -> np.ndarray:
    rows = np.zeros(n, dtype=bool)
    rows[chosen] = True
    return rows


class _Batch:
    """The binary problems of a logistic sweep, one per (fold, setting, class), one-vs-rest
    over the classes a fold's rows hold (the larger label alone with two). A setting is a C,
    or for PCA's probe a number of leading columns (at C = 1)."""

    def __init__(self, y: np.ndarray, folds: list[np.ndarray], settings: Sequence[float]):
        self.y, self.folds = y, folds
        self.problems = []  # (fold, setting, class)
        self.of: dict[tuple[int, float], list[int]] = defaultdict(list)  # their indices
        for f, rows in enumerate(folds):
            classes = np.unique(y[rows])
            targets = classes[1:] if len(classes) == 2 else classes
            for s in settings:
                for c in targets:
                    self.of[(f, s)].append(len(self.problems))
                    self.problems.append((f, s, c))
        self.targets = np.column_stack([y == c for _, _, c in self.problems])
        self.rows = np.column_stack([folds[f] for f, _, _ in self.problems])
        self.settings = np.array([s for _, s, _ in self.problems], dtype=float)

    def solve_lbfgs(self, X: np.ndarray, by: str = "C"):
        if by == "C":
            return lbfgs.solve(X, self.targets, self.rows, self.settings)
        widths = self.settings.astype(int)
        return lbfgs.solve(X, self.targets, self.rows, np.ones(len(widths)), features=widths)

    def probe(self, solution, f: int, setting: float) -> LinearProbe:
        picked = self.of[(f, setting)]
        classes = np.unique(self.y[self.folds[f]])
        return LinearProbe(solution.coef[picked], solution.intercept[picked], classes)

    def validation_auc(self, solution, X, splits, n_classes: int, first_fold: int):
        """Mean validation AUC per setting (in increasing order) over the splits, whose
        training rows are folds first_fold, first_fold + 1, ..."""
        settings = sorted({s for _, s, _ in self.problems})
        scores = np.array(
            [
                self._fold_auc(solution, X, va, i + first_fold, settings, n_classes)
                for i, (_, va) in enumerate(splits)
            ]
        )
        if not np.isfinite(scores).any():
            return np.zeros(len(settings))
        return np.nanmean(scores, axis=0)

    def _fold_auc(self, solution, X, va, f: int, settings, n_classes: int) -> np.ndarray:
        """The validation AUC of every setting's probe of fold f. With two classes each
        setting has one problem, so all of them are scored as one probe, ranked in one
        call."""
        if n_classes > 2:
            return np.array(
                [
                    auc(self.y[va], proba_full(self.probe(solution, f, s), X[va], n_classes))
                    for s in settings
                ]
            )
        picked = [i for s in settings for i in self.of[(f, s)]]
        every = LinearProbe(solution.coef[picked], solution.intercept[picked], np.arange(2))
        return binary_aucs(self.y[va] == 1, every.scores(X[va]))


def select_width_batch(
    Z: np.ndarray, y: np.ndarray, widths: Sequence[int], seed: int, n_classes: int
):
    """PCA's probe search (`find_best_pcareg`) with `probe.l2_solver: batch`: the default
    logistic regression on the first k columns of Z for every k of `widths` on every
    validation fold as one batched lbfgs run; the best k by mean validation AUC (the first
    of equals), refit by scikit-learn on all training data, as the reference refits.
    Returns the probe of the first k columns."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    width, val = int(widths[0]), None
    if splits:
        batch = _Batch(y, [_rows(len(y), train) for train, _ in splits], widths)
        mean = batch.validation_auc(batch.solve_lbfgs(Z, by="width"), Z, splits, n_classes, 0)
        mean = np.where(np.isfinite(mean), mean, -np.inf)
        best = int(np.argmax(mean))
        width, val = int(sorted(widths)[best]), float(mean[best])
    model = fit_quietly(logistic(1.0, "l2", seed, n_classes), Z[:, :width], y)
    if val is None:  # too few examples to validate: scored on the training data
        val = auc(y, proba_full(model, Z[:, :width], n_classes))
    return model, {"n_components": width}, val


def last_argmax(values: np.ndarray) -> int:
    """The last index of the largest finite value (0 if none is finite)."""
    values = np.where(np.isfinite(values), values, -np.inf)
    return int(len(values) - 1 - np.argmax(values[::-1]))


def select_by_validation(
    make: Callable[[dict], object],
    grid: Sequence[dict],
    X,
    y,
    seed: int,
    n_classes: int,
    view: Callable[[dict, object], object] = lambda params, X: X,
):
    """Best of `grid` by mean validation AUC (the first of equals, as the reference's strict
    comparison keeps it), refit on all data. `make` builds the estimator of a grid point and
    `view` the features it reads (PCA's leading components). Even a one-point grid is
    validated: its validation AUC is what the quiver compares."""
    splits = validation_splits(y, seed) if len(y) > 3 else []
    if not splits:  # too few examples to validate: scored on the training data
        params = grid[0]
        model = fit_quietly(make(params), view(params, X), y)
        return model, dict(params), auc(y, proba_full(model, view(params, X), n_classes))
    means = []
    for params in grid:
        Xp = view(params, X)
        fold = []
        for tr, va in splits:
            model = fit_quietly(clone(make(params)), Xp[tr], y[tr])
            fold.append(auc(y[va], proba_full(model, Xp[va], n_classes)))
        means.append(np.nanmean(fold) if np.isfinite(fold).any() else -np.inf)
    best = int(np.argmax(means))
    model = fit_quietly(make(grid[best]), view(grid[best], X), y)
    return model, dict(grid[best]), float(means[best])
