"""The behaviour table that behaviour@ writes and cross_model@ reads: per item the second
model's answer, whether it is right, and its hidden states (`hidden_<layer>`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from saeprobe.errors import ConfigError

CORRECT, WRONG = "correct", "wrong"


BEHAVIOUR_COLUMNS = ("id", "split", "expected", "answer", "label", "margin")


def read_behaviour(path: Path) -> pl.DataFrame:
    try:
        table = pl.read_parquet(path)
    except (OSError, pl.exceptions.ComputeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a behaviour table ({exc})") from exc
    missing = [c for c in BEHAVIOUR_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: lacks the columns {missing}; rerun behaviour@")
    return table


def hidden_matrix(table: pl.DataFrame, layer: int, where: str) -> np.ndarray:
    """The second model's hidden states of one layer; `where` names the table's file."""
    column = f"hidden_{layer}"
    if column not in table.columns:
        raise ConfigError(
            f"{where}: holds no column '{column}'; rerun behaviour@ with that layer in "
            "'cross_model.layers'"
        )
    return table[column].to_numpy().astype(np.float32)
