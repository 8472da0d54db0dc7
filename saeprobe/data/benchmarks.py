"""Offline benchmarks for self-regularization, built from packaged data.

spurious cue          a binary task whose training texts carry a marker (a source tag) on
                      `rate` of one label's texts and `1 - rate` of the other's, and whose
                      test texts carry it on half of each label's: a classifier that leans
                      on the marker loses accuracy in test
sensitive attribute   a binary task joined with an attribute of the same items (the
                      benchmark's politician and gender tasks share names): training skewed
                      so that the attribute agrees with the label at `skew`, test balanced
                      over every (label, attribute) cell

Both return the prepared-table schema with `group` holding the nuisance or attribute, so the
attribute judge and the fairness metrics read it where they read any data set's group.
Every choice is exact (a seeded permutation, then counts), not a coin per row, so the rates
hold exactly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from saeprobe.errors import ConfigError

CUE, NO_CUE = "cue", "no cue"


def _exact_share(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask with round(share * n) True at seeded positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(share * n))]] = True
    return mask


def add_spurious_cue(
    prepared: pl.DataFrame,
    marker: str,
    rate: float,
    seed: int,
    position: str = "suffix",
    where: str = "spurious cue",
) -> pl.DataFrame:
    """The task with `marker` added to its texts: in training on `rate` of label 1 and
    `1 - rate` of label 0, elsewhere on half of each label."""
    if not 0.5 <= rate <= 1.0:
        raise ConfigError(f"{where}: rate must lie in [0.5, 1]; got {rate}")
    if position not in ("prefix", "suffix"):
        raise ConfigError(f"{where}: position must be prefix or suffix; got {position!r}")
    if not marker.strip():
        raise ConfigError(f"{where}: the marker is empty")
    labels = prepared["label"].to_numpy()
    if set(np.unique(labels)) != {0, 1}:
        raise ConfigError(
            f"{where}: needs a binary task with labels 0 and 1; got {np.unique(labels)}"
        )
    rng = np.random.default_rng(seed)
    split = prepared["split"].to_numpy()
    marked = np.zeros(len(labels), dtype=bool)
    for part in np.unique(split):
        for label in (0, 1):
            rows = np.flatnonzero((split == part) & (labels == label))
            share = (rate if label == 1 else 1 - rate) if part == "train" else 0.5
            marked[rows] = _exact_share(len(rows), share, rng)
    texts = prepared["text"].to_list()
    tagged = [
        (f"{marker} {t}" if position == "prefix" else f"{t} {marker}") if m else t
        for t, m in zip(texts, marked, strict=True)
    ]
    return prepared.with_columns(
        pl.Series("text", tagged), pl.Series("group", np.where(marked, CUE, NO_CUE))
    )


def join_attribute(
    task: pl.DataFrame, attribute: pl.DataFrame, key: str = "prompt", where: str = "attribute"
) -> pl.DataFrame:
    """Items of `task` (key, target) that `attribute` (key, target) also labels, with the
    attribute as `group`; items either table labels twice, inconsistently, are dropped."""
    for name, table in (("task", task), ("attribute", attribute)):
        missing = {key, "target"} - set(table.columns)
        if missing:
            raise ConfigError(f"{where}: the {name} table lacks {sorted(missing)}")

    def consistent(table: pl.DataFrame) -> pl.DataFrame:
        table = table.select(key, pl.col("target").cast(pl.String)).unique()
        once = table.group_by(key).len().filter(pl.col("len") == 1).select(key)
        return table.join(once, on=key)

    joined = consistent(task).join(
        consistent(attribute).rename({"target": "group"}), on=key, how="inner"
    )
    if joined.height == 0:
        raise ConfigError(f"{where}: the task and attribute share no items")
    return (
        joined.rename({key: "text", "target": "label"})
        .with_columns(pl.col("label").cast(pl.Int64))
        .sort("text")
    )


def skewed_split(
    joined: pl.DataFrame, skew: float, test_per_cell: int, seed: int, where: str = "attribute"
) -> pl.DataFrame:
    """`split` for (text, label, group): `test_per_cell` test items in each of the four
    (label, group) cells, and the largest label-balanced training set from the rest in which
    the group agrees with the label (label 1 with the second group value) at `skew`."""
    if not 0.5 <= skew < 1.0:
        raise ConfigError(f"{where}: skew must lie in [0.5, 1); got {skew}")
    groups = sorted(joined["group"].unique().to_list())
    if len(groups) != 2 or set(joined["label"].unique().to_list()) != {0, 1}:
        raise ConfigError(
            f"{where}: needs binary labels and a binary attribute; got "
            f"labels {sorted(joined['label'].unique().to_list())} and groups {groups}"
        )
    rng = np.random.default_rng(seed)
    labels, group = joined["label"].to_numpy(), joined["group"].to_numpy()
    split = np.full(joined.height, "", dtype=object)
    rest: dict[tuple[int, bool], np.ndarray] = {}
    for label in (0, 1):
        for g in groups:
            rows = rng.permutation(np.flatnonzero((labels == label) & (group == g)))
            if len(rows) <= test_per_cell:
                raise ConfigError(
                    f"{where}: only {len(rows)} items with label {label} "
                    f"and group {g!r}; test_per_cell {test_per_cell} leaves none to train on"
                )
            split[rows[:test_per_cell]] = "test"
            rest[(label, (g == groups[1]) == bool(label))] = rows[test_per_cell:]
    per_label = min(
        int(min(len(rest[(label, True)]) / skew, len(rest[(label, False)]) / (1 - skew)))
        for label in (0, 1)
    )
    n_agree = int(round(skew * per_label))
    for label in (0, 1):
        split[rest[(label, True)][:n_agree]] = "train"
        split[rest[(label, False)][: per_label - n_agree]] = "train"
    keep = split != ""
    return joined.with_columns(pl.Series("split", split.astype(str))).filter(pl.Series(keep))
