"""Fairness gaps and attribute leakage of a binary classifier's predictions."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from saeprobe.errors import ConfigError


def _groups(group: np.ndarray) -> np.ndarray:
    values = np.unique(group)
    if len(values) < 2:
        raise ConfigError(f"fairness needs two or more groups; column 'group' has {values}")
    return values


def demographic_parity_gap(pred: np.ndarray, group: np.ndarray) -> float:
    """max - min over groups of P(pred = 1 | group)."""
    rates = [pred[group == g].mean() for g in _groups(group)]
    return float(max(rates) - min(rates))


def equalized_odds_gap(pred: np.ndarray, y: np.ndarray, group: np.ndarray) -> float:
    """The larger of the gaps in true-positive and false-positive rate between groups."""
    gaps = []
    for label in (1, 0):
        rates = [
            pred[(group == g) & (y == label)].mean()
            for g in _groups(group)
            if ((group == g) & (y == label)).any()
        ]
        if len(rates) > 1:
            gaps.append(max(rates) - min(rates))
    return float(max(gaps)) if gaps else float("nan")


def leakage_auc(features: np.ndarray, group: np.ndarray, seed: int, folds: int = 5) -> float:
    """How well the attribute is predicted from `features` (a classifier's scores, or its
    inputs): out-of-fold ROC-AUC of a logistic regression, 0.5 = nothing leaks. Binary
    attributes only."""
    values = _groups(group)
    if len(values) != 2:
        raise ConfigError(f"leakage needs a binary attribute; column 'group' has {values}")
    target = (group == values[1]).astype(int)
    features = np.asarray(features, dtype=float).reshape(len(target), -1)
    folds = min(folds, int(np.bincount(target).min()))
    if folds < 2:
        return float("nan")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    model = LogisticRegression(max_iter=1000)
    oof = cross_val_predict(model, features, target, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(target, oof))
