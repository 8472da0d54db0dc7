"""Assemble one data set's probe inputs, row-aligned with its prepared table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from saeprobe.config import ProbeConfig
from saeprobe.errors import ConfigError
from saeprobe.probes.sweep import Representation
from saeprobe.store import FeatureFile, read_pooled


def align(ids: list[str], wanted: list[str], where: str) -> np.ndarray:
    """Row of each wanted id in `ids`."""
    index = {doc_id: i for i, doc_id in enumerate(ids)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise ConfigError(f"{where}: {len(missing)} document(s) missing, e.g. {missing[:3]}")
    return np.asarray([index[w] for w in wanted])


def load_representations(
    prepared: pl.DataFrame,
    *,
    pooled_path: Path,
    feature_path: Callable[[int], Path],
    layers: list[int],
    cfg: ProbeConfig,
) -> list[Representation]:
    """The raw text, and per layer the pooled hidden states and the SAE features of every
    configured SAE: at the main poolings, at each of probe.compare_poolings, and MOSAIC's
    binarized top-n counts (the last two marked as comparisons, which the normal regime
    alone probes)."""
    ids = prepared["id"].to_list()
    reps = [Representation(-1, "text", np.asarray(prepared["text"].to_list(), dtype=object))]
    for layer in layers:
        for pooling in _with_comparisons(cfg.hidden_pooling, cfg):
            pooled_ids, X = read_pooled(pooled_path, layer, pooling)
            rows = align(pooled_ids, ids, str(pooled_path))
            comparison = pooling != cfg.hidden_pooling
            reps.append(Representation(layer, "hidden", X[rows], pooling, comparison))
        if not cfg.sae_methods:
            continue
        features = FeatureFile(feature_path(layer))
        rows = align(features.doc_ids, ids, str(features.path))
        for variant in cfg.saes:
            for pooling in _with_comparisons(cfg.sae_pooling, cfg):
                X = sp.csr_matrix(features.matrix(variant, pooling)[rows])
                comparison = pooling != cfg.sae_pooling
                reps.append(
                    Representation(
                        layer,
                        f"sae_{variant}",
                        X,
                        pooling,
                        comparison,
                        task_docs=features.task_docs[variant],
                    )
                )
            reps += mosaic_representations(features, rows, layer, variant, cfg)
    return reps


def mosaic_representations(
    features: FeatureFile, rows: np.ndarray, layer: int, variant: str, cfg: ProbeConfig
) -> list[Representation]:
    """MOSAIC's features: each top-n count matrix binarized at each threshold (a latent is
    on when it is among a document's tokens' top n more than `threshold` times)."""
    if not cfg.mosaic_methods:
        return []
    reps = []
    for n in cfg.mosaic_top_n:
        counts = features.matrix(variant, f"top{n}")[rows]
        for threshold in cfg.mosaic_thresholds:
            X = sp.csr_matrix((counts > threshold).astype(np.float32))
            pooling = f"top{n}>{threshold:g}"
            reps.append(
                Representation(
                    layer,
                    f"sae_{variant}",
                    X,
                    pooling,
                    comparison=True,
                    mosaic=True,
                    task_docs=features.task_docs[variant],
                )
            )
    return reps


def _with_comparisons(main: str, cfg: ProbeConfig) -> list[str]:
    return [main] + [p for p in cfg.compare_poolings if p != main]
