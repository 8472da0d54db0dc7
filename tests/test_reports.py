"""reports/metrics.json: counts that are functions of the prepared data and the activations."""

import json

import polars as pl

from saeprobe.data.schema import SCHEMA
from saeprobe.report.data import data_metrics


def prepared(path, splits, labels):
    n = len(splits)
    pl.DataFrame(
        {
            "id": [f"x:{i}" for i in range(n)],
            "text": [f"text {i}" for i in range(n)],
            "label": labels,
            "label_name": [str(v) for v in labels],
            "split": splits,
            "group": [None] * n,
            "domain": [None] * n,
        },
        schema=SCHEMA,
    ).write_parquet(path)


def test_data_metrics_count_splits_classes_and_tokens(tmp_path):
    prepared(tmp_path / "a.parquet", ["train", "train", "test", "ood"], [0, 1, 2, 0])
    prepared(tmp_path / "b.parquet", ["train", "test"], [0, 1])
    for name, tokens in (("a", 40), ("b", 10)):
        (tmp_path / name).mkdir()
        stats = {"docs": 4, "tokens": tokens, "content_tokens": tokens - 4, "truncated_docs": 1}
        (tmp_path / name / "stats.json").write_text(json.dumps(stats | {"batches": 1}))
    metrics = data_metrics(
        {"b": tmp_path / "b.parquet", "a": tmp_path / "a.parquet"},
        {"a": tmp_path / "a", "b": tmp_path / "b"},
    )
    assert metrics["total"] == {"datasets": 2, "examples": 6, "tokens": 50}
    assert metrics["datasets"]["a"]["data"] == {
        "examples": 4,
        "classes": 3,
        "train_examples": 2,
        "test_examples": 1,
        "ood_examples": 1,
    }
    assert metrics["datasets"]["b"]["extract"] == {
        "docs": 4,
        "tokens": 10,
        "content_tokens": 6,
        "truncated_docs": 1,
    }
