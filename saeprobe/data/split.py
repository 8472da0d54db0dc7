"""Deduplication, stratified capping and stratified splits, all seeded."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.model_selection import train_test_split

from saeprobe.errors import ConfigError


def drop_duplicate_texts(df: pl.DataFrame) -> pl.DataFrame:
    """Keep one row per exact text, so a text can never sit in both train and test.

    Texts that occur with different labels are dropped entirely: no split could score them
    fairly. Shifted (OOD) rows whose text also occurs in-distribution are dropped too.
    """
    in_dist = df.filter(pl.col("split").is_null() | (pl.col("split") != "ood"))
    ood = df.filter(pl.col("split") == "ood")
    in_dist = _dedupe(in_dist)
    ood = _dedupe(ood).filter(~pl.col("text").is_in(in_dist["text"].implode()))
    return pl.concat([in_dist, ood], how="vertical")


def _dedupe(df: pl.DataFrame) -> pl.DataFrame:
    conflicting = (
        df.group_by("text").agg(pl.col("label").n_unique().alias("n")).filter(pl.col("n") > 1)
    )
    df = df.filter(~pl.col("text").is_in(conflicting["text"].implode()))
    return df.unique(subset="text", keep="first", maintain_order=True)


def stratified_cap(df: pl.DataFrame, cap: int | None, seed: int) -> pl.DataFrame:
    """At most `cap` rows, each class keeping its share (at least one row per class)."""
    if cap is None or df.height <= cap:
        return df
    rng = np.random.default_rng(seed)
    labels = df["label"].to_numpy()
    keep: list[np.ndarray] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        n = max(1, round(len(rows) * cap / df.height))
        keep.append(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return df[np.sort(np.concatenate(keep))]


def assign_splits(df: pl.DataFrame, test_size: float, seed: int, where: str) -> pl.DataFrame:
    """Fill the `split` of rows that have none with a stratified train/test split."""
    todo = df["split"].is_null().to_numpy()
    if not todo.any():
        return df
    rows = np.flatnonzero(todo)
    labels = df["label"].to_numpy()[rows]
    counts = np.bincount(labels)
    if (counts[counts > 0] < 2).any():
        raise ConfigError(
            f"{where}: every class needs at least 2 examples to split into train and test; "
            f"class counts are {dict(enumerate(counts.tolist()))}"
        )
    try:
        train_rows, test_rows = train_test_split(
            rows, test_size=test_size, stratify=labels, random_state=seed
        )
    except ValueError as exc:
        raise ConfigError(
            f"{where}.test_size={test_size} cannot split these classes: {exc}"
        ) from exc
    split = df["split"].to_numpy().astype(object)
    split[train_rows] = "train"
    split[test_rows] = "test"
    return df.with_columns(pl.Series("split", split, dtype=pl.String))
