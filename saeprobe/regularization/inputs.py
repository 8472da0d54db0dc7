"""The self-regularized classifier's inputs: one data set's pooled hidden states by split,
with labels and the `group` attribute, the check that the SAE reads those vectors, and the
latents the unintended stage marked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from saeprobe.errors import ConfigError
from saeprobe.io import read_json
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.store import read_pooled


@dataclass(frozen=True)
class EvalSet:
    X: np.ndarray
    y: np.ndarray
    group: np.ndarray | None = None  # the attribute, for fairness and leakage


@dataclass(frozen=True)
class Split:
    """Training data and the sets every classifier is scored on (test, and ood if any)."""

    X_train: np.ndarray
    y_train: np.ndarray
    evals: dict[str, EvalSet]


def check_sae_matches(sae: SparseAutoencoder, layer: int, stats_path: Path, where: str) -> None:
    """The SAE was trained on this layer of the model that made the activations."""
    model = read_json(stats_path).get("model") if stats_path.exists() else None
    if sae.cfg.layer is not None and int(sae.cfg.layer) != layer:
        raise ConfigError(f"{where}: the SAE was trained on layer {sae.cfg.layer}, not {layer}")
    if sae.cfg.model is not None and model is not None and sae.cfg.model != model:
        raise ConfigError(
            f"{where}: the SAE was trained on activations of '{sae.cfg.model}', but "
            f"{stats_path.parent} holds activations of '{model}'"
        )


def _group(part: pl.DataFrame, where: str) -> np.ndarray | None:
    """The split's `group` values; None when the column is empty. A partly empty column
    would make its missing rows a group of their own, so it is refused."""
    values = part["group"]
    if values.null_count() == values.len():
        return None
    if values.null_count():
        raise ConfigError(
            f"{where}: column 'group' is empty on {values.null_count()} of {values.len()} "
            "rows of a split; fill it everywhere or nowhere"
        )
    return values.to_numpy()


def load_split(
    prepared: pl.DataFrame, pooled_path: Path, layer: int, pooling: str, where: str
) -> tuple[Split, np.ndarray | None]:
    """(training vectors and labels with every evaluation split: test, and ood when the data
    set has one), and the training texts' group (None when the column is empty)."""
    ids, X = read_pooled(pooled_path, layer, pooling)
    row_of = {doc_id: i for i, doc_id in enumerate(ids)}
    missing = [d for d in prepared["id"].to_list() if d not in row_of]
    if missing:
        raise ConfigError(
            f"{pooled_path}: no pooled vector for {len(missing)} prepared document(s) of "
            f"{where}, e.g. '{missing[0]}'; rerun extract"
        )
    parts = {name: prepared.filter(pl.col("split") == name) for name in ("train", "test", "ood")}
    for name in ("train", "test"):
        if parts[name].height == 0:
            raise ConfigError(f"{where}: the data set has no '{name}' split")

    def rows(part: pl.DataFrame) -> np.ndarray:
        return X[[row_of[d] for d in part["id"].to_list()]]

    evals = {
        name: EvalSet(rows(part), part["label"].to_numpy(), _group(part, where))
        for name, part in parts.items()
        if name != "train" and part.height
    }
    train = parts["train"]
    split = Split(rows(train), train["label"].to_numpy(), evals)
    return split, _group(train, where)


def read_unintended(path: Path) -> np.ndarray:
    """The unintended latents recorded by the unintended stage."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run the unintended stage first")
    table = pl.read_parquet(path)
    if "unintended" not in table.columns or "latent" not in table.columns:
        raise ConfigError(f"{path}: expected the unintended stage's columns 'latent', 'unintended'")
    return np.sort(table.filter(pl.col("unintended"))["latent"].unique().to_numpy())
