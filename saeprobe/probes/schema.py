"""The results table every probe stage writes: one row per fit (or per setting skipped)."""

from __future__ import annotations

import polars as pl

RESULT_SCHEMA = {
    "train_dataset": pl.String,
    "test_dataset": pl.String,
    "layer": pl.Int64,
    "representation": pl.String,
    "pooling": pl.String,
    "pooling_comparison": pl.Boolean,
    "method": pl.String,
    "regime": pl.String,
    "level": pl.Float64,
    "seed": pl.Int64,
    "roc_auc": pl.Float64,
    "accuracy": pl.Float64,
    "macro_f1": pl.Float64,
    "val_auc": pl.Float64,
    "n_train": pl.Int64,
    "n_test": pl.Int64,
    # Unlabeled texts of the task the SAE was fine-tuned on (0: hidden states, text or a
    # pretrained SAE). Above n_train, the SAE probe drew on more of the task than its labels.
    "sae_task_docs": pl.Int64,
    "params": pl.String,
    "status": pl.String,
    "message": pl.String,
}


def results_frame(rows: list[dict]) -> pl.DataFrame:
    full = [{key: row.get(key) for key in RESULT_SCHEMA} for row in rows]
    return pl.DataFrame(full, schema=RESULT_SCHEMA)
