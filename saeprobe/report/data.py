"""Data set metrics: each data set's size by split and what extraction saw."""

from __future__ import annotations

from pathlib import Path

from saeprobe.data.schema import read_prepared
from saeprobe.io import read_json


def dataset_summary(prepared: Path) -> dict:
    df = read_prepared(prepared)
    counts = {split: int(n) for split, n in df.group_by("split").len().iter_rows()}
    return {
        "examples": df.height,
        "classes": int(df["label"].n_unique()),
        **{f"{split}_examples": counts.get(split, 0) for split in ("train", "test", "ood")},
    }


def extraction_summary(stats_path: Path) -> dict:
    stats = read_json(stats_path)
    return {key: stats[key] for key in ("docs", "tokens", "content_tokens", "truncated_docs")}


def data_metrics(prepared: dict[str, Path], activations: dict[str, Path]) -> dict:
    """Per data set: its size by split and what extraction saw; and the totals."""
    per_dataset = {
        name: {
            "data": dataset_summary(prepared[name]),
            "extract": extraction_summary(activations[name] / "stats.json"),
        }
        for name in sorted(prepared)
    }
    total = {
        "datasets": len(per_dataset),
        "examples": sum(d["data"]["examples"] for d in per_dataset.values()),
        "tokens": sum(d["extract"]["tokens"] for d in per_dataset.values()),
    }
    return {"total": total, "datasets": per_dataset}
