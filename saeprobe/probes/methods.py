"""Every probe: hidden-state baselines, bag-of-words, and SAE-latent probes.

A method maps (X_train, y_train, X_test) to class probabilities on the test set, the chosen
hyper-parameters and the validation AUC that chose them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from saeprobe.errors import ConfigError
from saeprobe.probes.validation import (
    logistic,
    proba_full,
    select_by_validation,
    select_logistic,
)

BASELINES = ("logreg_l2", "logreg_l1", "pca", "knn", "xgboost", "mlp", "tree")
SAE_METHODS = ("sae_topk", "sae_l1")
TEXT_METHODS = ("tfidf",)


@dataclass(frozen=True)
class ProbeConfig:
    n_jobs: int = -1
    c_log10_range: list[float] = field(default_factory=lambda: [-5.0, 5.0])
    c_grid_size: int = 10
    sae_k: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    hidden_pooling: str = "mean"
    sae_pooling: str = "mean"
    saes: list[str] = field(default_factory=lambda: ["pretrained", "finetuned"])
    binarized: bool = True
    baselines: list[str] = field(default_factory=lambda: list(BASELINES + TEXT_METHODS))
    sae_methods: list[str] = field(default_factory=lambda: list(SAE_METHODS))
    xgboost_trials: int = 4
    bootstrap: int = 1000

    @property
    def Cs(self) -> list[float]:
        lo, hi = self.c_log10_range
        return list(np.logspace(lo, hi, self.c_grid_size))


@dataclass
class Fit:
    proba: np.ndarray
    params: dict
    val_auc: float


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


def fit_method(
    method: str, X_train, y_train, X_test, cfg: ProbeConfig, seed: int, n_classes: int
) -> Fit:
    """Fit one method; `sae_top<k>` is the top-k latent probe with that k."""
    n = len(y_train)
    if method in ("logreg_l2", "logreg_l1", "sae_l1"):
        penalty = "l2" if method == "logreg_l2" else "l1"
        model, params, val = select_logistic(X_train, y_train, cfg.Cs, penalty, seed, n_classes)
        return Fit(proba_full(model, X_test, n_classes), params, val)
    if method.startswith("sae_top"):
        k = int(method.removeprefix("sae_top"))
        if k > X_train.shape[1]:
            raise ConfigError(
                f"params: 'probe.sae_k' has {k}, larger than the SAE width {X_train.shape[1]}"
            )
        keep = rank_latents(X_train, y_train)[:k]
        Xtr, Xte = _dense(X_train[:, keep]), _dense(X_test[:, keep])
        model, params, val = select_logistic(Xtr, y_train, cfg.Cs, "l2", seed, n_classes)
        params["latents"] = keep.tolist()
        return Fit(proba_full(model, Xte, n_classes), params, val)
    if method == "pca":
        limit = min(n - 1, X_train.shape[1])
        grid = [{"n": c} for c in (1, 2, 5, 10, 20, 50, 100, 200) if c <= limit] or [{"n": 1}]
        reducer = TruncatedSVD if sp.issparse(X_train) else PCA

        def make(p):
            return make_pipeline(
                reducer(n_components=p["n"], random_state=seed),
                logistic(1.0, "l2", seed, n_classes),
            )

        model, params, val = select_by_validation(make, grid, X_train, y_train, seed, n_classes)
    elif method == "knn":
        grid = [{"k": k} for k in (1, 2, 3, 5, 10, 20, 50) if k <= max(1, n // 2)]

        def make(p):
            return make_pipeline(
                StandardScaler(with_mean=not sp.issparse(X_train)),
                KNeighborsClassifier(n_neighbors=p["k"]),
            )

        model, params, val = select_by_validation(make, grid, X_train, y_train, seed, n_classes)
    elif method == "xgboost":
        model, params, val = _xgboost(X_train, y_train, cfg, seed, n_classes)
    elif method == "mlp":
        grid = [
            {"hidden": (64,), "alpha": 1e-4},
            {"hidden": (128,), "alpha": 1e-2},
            {"hidden": (256, 128), "alpha": 1e-3},
        ]

        def make(p):
            return make_pipeline(
                StandardScaler(with_mean=not sp.issparse(X_train)),
                MLPClassifier(p["hidden"], alpha=p["alpha"], max_iter=200, random_state=seed),
            )

        model, params, val = select_by_validation(make, grid, X_train, y_train, seed, n_classes)
    elif method == "tree":
        grid = [{"depth": d} for d in (2, 4, 8, 16, None)]

        def make(p):
            return DecisionTreeClassifier(max_depth=p["depth"], random_state=seed)

        model, params, val = select_by_validation(make, grid, X_train, y_train, seed, n_classes)
    elif method == "tfidf":
        grid = [{"C": C} for C in (0.1, 1.0, 10.0, 100.0)]

        def make(p):
            return make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                logistic(p["C"], "l2", seed, n_classes),
            )

        model, params, val = select_by_validation(make, grid, X_train, y_train, seed, n_classes)
    else:
        raise ConfigError(
            f"params: unknown probe method '{method}'; expected one of "
            f"{BASELINES + TEXT_METHODS + SAE_METHODS}"
        )
    return Fit(proba_full(model, X_test, n_classes), params, val)


def _xgboost(X, y, cfg: ProbeConfig, seed: int, n_classes: int):
    from xgboost import XGBClassifier

    rng = np.random.default_rng(seed)
    space = {
        "max_depth": [2, 3, 4, 6],
        "n_estimators": [50, 100, 200],
        "learning_rate": [0.03, 0.1, 0.3],
        "subsample": [0.7, 1.0],
    }
    grid = [
        {k: v[rng.integers(len(v))] for k, v in space.items()} for _ in range(cfg.xgboost_trials)
    ]
    grid = [{k: (float(v) if isinstance(v, float) else int(v)) for k, v in p.items()} for p in grid]

    def make(p):
        return XGBClassifier(
            **p, n_jobs=1, tree_method="hist", random_state=seed, eval_metric="logloss"
        )

    return select_by_validation(make, grid, X, y, seed, n_classes)
