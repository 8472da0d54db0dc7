"""The SAE pretraining corpus: texts of other benchmark tasks, never an evaluation text."""

from __future__ import annotations

import polars as pl

from saeprobe.config import CorpusConfig, DatasetConfig
from saeprobe.data.schema import validate
from saeprobe.data.sources import load_source
from saeprobe.data.split import assign_splits


def evaluation_texts(datasets: dict[str, DatasetConfig]) -> set[str]:
    """Every text of every configured data set, before any cap: none may pretrain an SAE."""
    texts: set[str] = set()
    for name, cfg in datasets.items():
        raw = load_source(cfg, f"datasets.{name}")
        texts |= set(raw.filter(pl.col("text").is_not_null())["text"].to_list())
    return texts


def prepare_corpus(cfg: CorpusConfig, exclude: set[str], seed: int) -> pl.DataFrame:
    """Texts of `cfg.tasks`, minus any text in `exclude`; label = task, split = train/test."""
    parts = []
    for index, task in enumerate(cfg.tasks):
        raw = load_source(DatasetConfig(source="sae_probes", task=task), f"corpus.tasks[{index}]")
        texts = (
            raw.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
            .filter(~pl.col("text").is_in(list(exclude)))
            .unique(subset="text", keep="first", maintain_order=True)
        )
        texts = texts.sample(n=min(cfg.max_texts_per_task, texts.height), seed=seed, shuffle=True)
        parts.append(
            texts.select(
                pl.col("text"),
                pl.lit(index, pl.Int64).alias("label"),
                pl.lit(task).alias("label_name"),
                (pl.lit(f"corpus:{task}:") + pl.col("source_index").cast(pl.String)).alias("id"),
            )
        )
    df = pl.concat(parts).unique(subset="text", keep="first", maintain_order=True)
    df = df.with_columns(
        pl.lit(None, pl.String).alias("split"),
        pl.lit(None, pl.String).alias("group"),
        pl.lit("corpus").alias("domain"),
    )
    if cfg.eval_fraction > 0:
        df = assign_splits(df, cfg.eval_fraction, seed, "corpus")
    else:
        df = df.with_columns(pl.lit("train").alias("split"))
    return validate(df, "corpus")
