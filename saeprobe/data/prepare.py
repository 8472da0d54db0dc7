"""Turn any source into the prepared table: ids, integer labels, splits, no leaks."""

from __future__ import annotations

import logging

import polars as pl

from saeprobe.config import DatasetConfig
from saeprobe.data.benchmarks import add_spurious_cue, skewed_split
from saeprobe.data.schema import SPLITS, validate
from saeprobe.data.sources import MAX_CLASSES, load_source
from saeprobe.data.split import assign_splits, drop_duplicate_texts, stratified_cap
from saeprobe.errors import ConfigError

log = logging.getLogger(__name__)


def prepare_dataset(name: str, cfg: DatasetConfig, seed: int) -> pl.DataFrame:
    where = f"datasets.{name}"
    raw = load_source(cfg, where)
    for col in ("split", "group", "domain"):
        if col not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(col))
    raw = raw.with_columns(pl.col("split").cast(pl.String))
    check_texts(raw, where)
    df = encode_labels(raw, where)
    before = class_counts(df)
    n_raw = df.height
    df = drop_duplicate_texts(df)
    if df.height < n_raw:
        log.info("%s: dropped %d duplicate or label-conflicting texts", name, n_raw - df.height)
    if cfg.source == "sae_probes_attribute":
        df = skewed_split(df, cfg.skew, cfg.test_per_cell, seed, where)
    else:
        pending = stratified_cap(df.filter(pl.col("split").is_null()), cfg.max_examples, seed)
        given = df.filter(pl.col("split").is_in(["train", "test"]))
        ood = stratified_cap(df.filter(pl.col("split") == "ood"), cfg.max_ood_examples, seed)
        df = pl.concat([assign_splits(pending, cfg.test_size, seed, where), given, ood])
    if cfg.cue_marker is not None:
        df = add_spurious_cue(df, cfg.cue_marker, cfg.cue_rate, seed, cfg.cue_position, where)
    df = df.sort("source_index").with_columns(
        (pl.lit(f"{name}:") + pl.col("source_index").cast(pl.String)).alias("id")
    )
    check_classes(df, before, where)
    return validate(df, where)


def class_counts(df: pl.DataFrame) -> dict[str, int]:
    counts = df.group_by("label_name").len().sort("label_name")
    return dict(counts.iter_rows())


def check_classes(df: pl.DataFrame, before: dict[str, int], where: str) -> None:
    """Two classes or more survive de-duplication and capping, each in train and in test."""
    after = {
        split: class_counts(df.filter(pl.col("split") == split)) for split in ("train", "test")
    }
    short = [c for c in before if not (after["train"].get(c) and after["test"].get(c))]
    if len(after["train"]) < 2 or short:
        raise ConfigError(
            f"{where}: after removing duplicate and label-conflicting texts and capping, "
            f"class(es) {short or sorted(after['train'])} lack examples in train or test; "
            f"need at least 2 classes, each in both. Examples per class before: {before}; "
            f"after: train {after['train']}, test {after['test']}"
        )


def check_texts(df: pl.DataFrame, where: str) -> None:
    empty = df.filter(pl.col("text").is_null() | (pl.col("text").str.strip_chars() == ""))
    if empty.height:
        rows = empty["source_index"].head(5).to_list()
        raise ConfigError(f"{where}: {empty.height} empty text(s), e.g. at row(s) {rows}")
    bad_split = set(df["split"].drop_nulls().unique().to_list()) - set(SPLITS)
    if bad_split:
        raise ConfigError(f"{where}.split_column: values {sorted(bad_split)}; expected {SPLITS}")


def encode_labels(df: pl.DataFrame, where: str) -> pl.DataFrame:
    """Integer labels numbered in the sorted order of the label values."""
    values = df["label_value"]
    if values.null_count():
        raise ConfigError(f"{where}: the label column has {values.null_count()} missing value(s)")
    if values.dtype.is_float():
        if (values != values.round()).any():
            raise ConfigError(
                f"{where}: the label column holds non-integer numbers; expected class labels"
            )
        values = values.cast(pl.Int64)
    in_dist = df["split"].fill_null("") != "ood"
    classes = values.filter(in_dist).unique().sort().to_list()
    if len(classes) < 2:
        raise ConfigError(
            f"{where}: the label column has {len(classes)} class(es) {classes}; need at least 2"
        )
    if len(classes) > MAX_CLASSES:
        raise ConfigError(
            f"{where}: the label column has {len(classes)} distinct values; a classification "
            f"task has at most {MAX_CLASSES} (is it a regression target?)"
        )
    unseen = set(values.unique().to_list()) - set(classes)
    if unseen:
        raise ConfigError(f"{where}: shifted rows carry labels {sorted(unseen)} unseen in training")
    index = {value: i for i, value in enumerate(classes)}
    return df.with_columns(
        pl.Series("label", [index[v] for v in values.to_list()], dtype=pl.Int64),
        values.cast(pl.String).alias("label_name"),
    ).drop("label_value")
