"""The sparse-probing paper's four regimes (plus the normal one) as seeded samplers.

Each sampler takes the indices of the training pool, of the test split and of the shifted
split, and returns the training indices, their (possibly noisy) labels and the test indices.
A level that this data cannot support raises Infeasible; the sweep records it and goes on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saeprobe.config import RegimeConfig
from saeprobe.errors import ConfigError, Infeasible


@dataclass
class Sample:
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray


def balanced(pool: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n indices from `pool`, as even across classes as the pool allows."""
    by_class = [rng.permutation(pool[y[pool] == c]) for c in np.unique(y[pool])]
    take = [0] * len(by_class)
    while sum(take) < min(n, len(pool)):
        open_classes = [i for i, rows in enumerate(by_class) if take[i] < len(rows)]
        i = min(open_classes, key=lambda c: take[c])
        take[i] += 1
    return rng.permutation(
        np.concatenate([rows[:t] for rows, t in zip(by_class, take, strict=True)])
    )


def require_per_class(
    idx: np.ndarray, labels: np.ndarray, n_classes: int, minimum: int, what: str
) -> None:
    counts = np.bincount(labels, minlength=n_classes)
    if (counts < minimum).any():
        raise Infeasible(
            f"{what}: leaves class counts {counts.tolist()}; every class needs at least {minimum}"
        )


def sample(
    regime: str,
    level: float | None,
    cfg: RegimeConfig,
    y: np.ndarray,
    *,
    train_pool: np.ndarray,
    test_pool: np.ndarray,
    ood_pool: np.ndarray,
    seed: int,
) -> Sample:
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    what = f"regime {regime}" + (f" at level {level:g}" if level is not None else "")
    test = test_pool
    if regime in ("normal", "noise", "shift"):
        train = balanced(train_pool, y, min(cfg.max_train, len(train_pool)), rng)
        labels = y[train].copy()
        if regime == "noise":
            labels = flip_labels(labels, float(level), n_classes, rng)
        if regime == "shift":
            if len(ood_pool) == 0:
                raise Infeasible(f"{what}: this data set has no shifted (OOD) split")
            test = ood_pool
        require_per_class(train, y[train], n_classes, 2, what)
    elif regime == "scarcity":
        size = int(level)
        if size > len(train_pool):
            raise Infeasible(
                f"{what}: asks for {size} training examples; the pool has {len(train_pool)}"
            )
        train = balanced(train_pool, y, size, rng)
        labels = y[train].copy()
        # Two examples in all is the regime's first level: one per class is its floor.
        require_per_class(train, labels, n_classes, 1, what)
    elif regime == "imbalance":
        if n_classes != 2:
            raise Infeasible(f"{what}: class imbalance is defined for binary tasks only")
        shares = list(cfg.levels) or [float(level)]
        n_train = min(cfg.train_size, fillable(train_pool, y, shares))
        train = imbalanced(train_pool, y, float(level), n_train, rng)
        labels = y[train].copy()
        test = imbalanced(test_pool, y, float(level), fillable(test_pool, y, shares), rng)
        require_per_class(train, labels, 2, 2, what)
        require_per_class(test, y[test], 2, 1, f"{what} (test set)")
    else:
        raise ConfigError(f"params: unknown regime '{regime}'")
    return Sample(train, labels, test)


def fillable(pool: np.ndarray, y: np.ndarray, shares: list[float]) -> int:
    """The largest set size that the pool can fill at every one of `shares` (so at both
    extremes), as `sae_probes.utils_data.get_classimabalance_num_train` sizes the
    regime: the training size then stays the same at every share."""
    n_pos = int((y[pool] == 1).sum())
    n_neg = len(pool) - n_pos
    return int(min(n_pos / max(shares), n_neg / (1 - min(shares))))


def imbalanced(
    pool: np.ndarray, y: np.ndarray, positive_share: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """`size` examples of the pool with the given share of class 1 (ceil, as the reference's
    `get_train_test_indices` rounds), or as many as the pool allows."""
    pos = rng.permutation(pool[y[pool] == 1])
    neg = rng.permutation(pool[y[pool] == 0])
    size = min(
        size,
        int(len(pos) / max(positive_share, 1e-9)),
        int(len(neg) / max(1 - positive_share, 1e-9)),
    )
    n_pos = min(int(np.ceil(size * positive_share - 1e-9)), len(pos))
    return rng.permutation(np.concatenate([pos[:n_pos], neg[: size - n_pos]]))


def flip_labels(
    labels: np.ndarray, share: float, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip `share` of the labels: to the other class, or to a random other class."""
    if not 0 <= share <= 1:
        raise ConfigError(f"label-noise level {share} must lie in [0, 1]")
    labels = labels.copy()
    flip = rng.choice(len(labels), size=int(round(share * len(labels))), replace=False)
    offset = rng.integers(1, n_classes, size=len(flip))
    labels[flip] = (labels[flip] + offset) % n_classes
    return labels
