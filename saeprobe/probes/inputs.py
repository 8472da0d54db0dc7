"""Assemble one data set's probe inputs, row-aligned with its prepared table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from saeprobe.errors import ConfigError
from saeprobe.features import FeatureFile, sae_fingerprint
from saeprobe.probes.methods import ProbeConfig
from saeprobe.probes.sweep import Representation
from saeprobe.store import read_pooled


def align(ids: list[str], wanted: list[str], where: str) -> np.ndarray:
    """Row of each wanted id in `ids`."""
    index = {doc_id: i for i, doc_id in enumerate(ids)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise ConfigError(f"{where}: {len(missing)} document(s) missing, e.g. {missing[:3]}")
    return np.asarray([index[w] for w in wanted])


def load_representations(
    prepared: pl.DataFrame,
    pooled_path: Path,
    feature_path: Callable[[int], Path],
    sae_folder: Callable[[int, str], Path],
    layers: list[int],
    cfg: ProbeConfig,
    binarize_threshold: float | None,
) -> list[Representation]:
    """Hidden states, SAE features (and their binarized form) per layer, and the raw text.
    A representation that cannot be read is kept with its error, so the sweep reports it."""
    ids = prepared["id"].to_list()
    reps = [Representation(-1, "text", np.asarray(prepared["text"].to_list(), dtype=object))]
    for layer in layers:
        pooled_ids, X = read_pooled(pooled_path, layer, cfg.hidden_pooling)
        reps.append(Representation(layer, "hidden", X[align(pooled_ids, ids, str(pooled_path))]))
        if not cfg.sae_methods:
            continue
        for variant in cfg.saes:
            name = f"sae_{variant}"
            try:
                features = FeatureFile(feature_path(layer))
                expected = sae_fingerprint(sae_folder(layer, variant))
                matrix = features.matrix(variant, cfg.sae_pooling, expected)
                X = sp.csr_matrix(matrix[align(features.doc_ids, ids, str(features.path))])
            except ConfigError as exc:
                reps.append(Representation(layer, name, None, str(exc)))
                if binarize_threshold is not None and cfg.binarized:
                    reps.append(Representation(layer, f"{name}_bin", None, str(exc)))
                continue
            reps.append(Representation(layer, name, X))
            if binarize_threshold is not None and cfg.binarized:
                binary = (binarize_threshold < X).astype(np.float32)
                reps.append(Representation(layer, f"{name}_bin", sp.csr_matrix(binary)))
    return reps
