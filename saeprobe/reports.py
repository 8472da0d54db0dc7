"""Metric reports: small JSON files that DVC shows with `dvc metrics show/diff`."""

from __future__ import annotations

from pathlib import Path

from saeprobe.data import read_prepared
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
    keys = ("docs", "tokens", "content_tokens", "truncated_docs", "seconds", "tokens_per_s")
    return {key: stats[key] for key in keys}


def data_metrics(names: list[str], prepared: dict[str, Path], activations: dict[str, Path]) -> dict:
    out = {}
    for name in names:
        entry = {"data": dataset_summary(prepared[name])}
        stats = activations[name] / "stats.json"
        if stats.exists():
            entry["extract"] = extraction_summary(stats)
        out[name] = entry
    return out


def totals(per_dataset: dict) -> dict:
    extracts = [d["extract"] for d in per_dataset.values() if "extract" in d]
    tokens = sum(e["tokens"] for e in extracts)
    seconds = sum(e["seconds"] for e in extracts)
    return {
        "datasets": len(per_dataset),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
    }
