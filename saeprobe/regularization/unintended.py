"""Which latents of a fine-tuned SAE a classifier must not use: the configured judges, run on
one data set, and their decisions combined.

The judges read what a researcher would: the SAE's feature cards (its top token spans on
the task's test texts) for the concepts and LLM judges, and the SAE's codes of the
classifier's own inputs (the pooled training documents) for the attribute judge. One table
holds every judge's decision per latent; `unintended` marks the combined verdict, and the
unintended latents carry their top spans, so the report can show what was removed."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl
import torch

from saeprobe.config import JudgesConfig, LLMEndpointConfig
from saeprobe.errors import ConfigError
from saeprobe.regularization.judges import (
    TABLE_SCHEMA,
    attribute_judge,
    concept_judge,
    unintended_latents,
)
from saeprobe.regularization.llm_judge import LLMJudgeConfig, llm_judge
from saeprobe.sae.base import SparseAutoencoder

log = logging.getLogger("unintended")
SPANS_SHOWN = 3  # top spans kept beside each unintended latent


@torch.no_grad()
def latent_codes(sae: SparseAutoencoder, X: np.ndarray) -> np.ndarray:
    """relu(pre-activations) of pooled vectors: every latent's evidence, not only the top
    k's (what the removal takes out of the inputs)."""
    return sae.pre_acts(torch.as_tensor(X, dtype=torch.float32)).relu().numpy()


def judge_latents(
    judges: JudgesConfig,
    *,
    cards: pl.DataFrame,
    codes: np.ndarray,
    labels: np.ndarray,
    group: np.ndarray | None,
    endpoint: LLMEndpointConfig,
    cache_path: Path,
    where: str,
) -> tuple[pl.DataFrame, dict]:
    """Every configured judge's table, concatenated, and what each judge did."""
    tables, status = [], {}
    if judges.concepts is not None:
        if cards.height == 0:
            raise ConfigError(f"{where}: the SAE has no feature cards for the concepts judge")
        tables.append(concept_judge(cards, judges.concepts))
    if judges.attribute is not None:
        if group is None:
            raise ConfigError(
                f"{where}: the attribute judge needs the data set's 'group' column (a "
                "sensitive or nuisance attribute), which is empty on its training texts"
            )
        tables.append(attribute_judge(codes, labels, group, judges.attribute))
    if judges.llm is not None:
        if endpoint.base_url is None:
            log.warning(
                "%s: no LLM endpoint configured (unintended.llm.base_url is null); the llm "
                "judge is not used, the other judges decide",
                where,
            )
            status["llm"] = "not configured"
        else:
            cfg = LLMJudgeConfig(**asdict(endpoint) | {"task": judges.llm.task})
            tables.append(llm_judge(cards, cfg, cache_path))
            status["llm"] = "used"
    table = pl.concat(tables) if tables else pl.DataFrame(schema=TABLE_SCHEMA)
    for judge in ("concepts", "attribute", "llm"):
        rows = table.filter(pl.col("judge") == judge)
        if rows.height:
            status[judge] = {
                "judged": rows.height,
                "unintended": rows.filter(pl.col("decision") == "unintended").height,
            }
    return table, status


def combine_decisions(table: pl.DataFrame, cards: pl.DataFrame, combine: str) -> pl.DataFrame:
    """The judges' table with `unintended` (the combined verdict per latent) and, for the
    unintended latents, their top spans."""
    marked = set(unintended_latents(table, combine).tolist()) if table.height else set()
    spans = (
        cards.sort("latent", "rank")
        .group_by("latent", maintain_order=True)
        .agg(pl.col("context").head(SPANS_SHOWN).str.join(" | ").alias("spans"))
        .with_columns(pl.col("latent").cast(pl.Int64))
        if cards.height
        else pl.DataFrame(schema={"latent": pl.Int64, "spans": pl.String})
    )
    out = table.with_columns(pl.col("latent").is_in(list(marked)).alias("unintended")).join(
        spans, on="latent", how="left"
    )
    return out.with_columns(
        pl.when(pl.col("unintended")).then(pl.col("spans")).otherwise(None).alias("spans")
    ).sort("latent", "judge")


def judge_summary(table: pl.DataFrame, status: dict) -> dict:
    """The unintended stage's metrics: how many latents each judge marked, and the total."""
    n = int(table.filter(pl.col("unintended"))["latent"].n_unique()) if table.height else 0
    return {"unintended": n, "empty": n == 0, "judges": status}
