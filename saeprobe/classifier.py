"""A trained SAE probe as a file: safetensors arrays (the latents it reads, its weights) and,
as JSON metadata, what it reads them from (model, layer, SAE, pooling), so that new text goes
through the same path (saeprobe.explain)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from saeprobe.errors import ConfigError
from saeprobe.io import atomic_path
from saeprobe.probes.validation import LinearProbe

FORMAT = "saeprobe.classifier/1"
METADATA_KEY = "saeprobe"


@dataclass(frozen=True)
class ClassifierInfo:
    """What a saved classifier reads, so that new text goes through the same path."""

    dataset: str
    model: str
    dtype: str
    max_length: int
    layer: int
    sae: str
    sae_dir: str
    sae_fingerprint: str
    pooling: str
    method: str
    C: float
    label_names: list[str]
    val_auc: float
    test_auc: float
    n_train: int


@dataclass(frozen=True)
class Classifier:
    info: ClassifierInfo
    latents: np.ndarray  # (k,) the SAE latents the probe reads
    coef: np.ndarray  # (outputs, k): one row for two classes, one per class above
    intercept: np.ndarray  # (outputs,)
    classes: np.ndarray  # the label ids the outputs stand for

    def _kept(self, codes) -> np.ndarray:
        """The kept latents' columns of SAE codes (docs, d_sae), dense."""
        X = codes[:, self.latents]
        return X.toarray() if sp.issparse(X) else np.asarray(X)

    def predict_proba(self, codes) -> np.ndarray:
        """Class probabilities (docs, classes), as the fitted probe gives them."""
        return LinearProbe(self.coef, self.intercept, self.classes).predict_proba(self._kept(codes))

    def contributions(self, codes, output: int) -> np.ndarray:
        """Each kept latent's share of one output's score: weight times activation."""
        return self._kept(codes) * self.coef[output]


def save_classifier(path: Path, classifier: Classifier) -> None:
    tensors = {
        "latents": classifier.latents.astype(np.int64),
        "coef": classifier.coef.astype(np.float64),
        "intercept": classifier.intercept.astype(np.float64),
        "classes": classifier.classes.astype(np.int64),
    }
    # One metadata entry: safetensors writes several in a per-process random order, and the
    # file must be the same bytes for the same classifier.
    record = {"format": FORMAT, "info": asdict(classifier.info)}
    metadata = {METADATA_KEY: json.dumps(record, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_classifier(path: str | Path) -> Classifier:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"classifier {path} does not exist; run `dvc repro` to train it")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "np") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path} is not a safetensors file: {error}") from None
    try:
        record = json.loads(metadata.get(METADATA_KEY, "{}"))
    except ValueError:
        record = {}
    if record.get("format") != FORMAT:
        raise ConfigError(
            f"{path} is not a saeprobe classifier (format {record.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    missing = {"latents", "coef", "intercept", "classes"} - set(tensors)
    if missing:
        raise ConfigError(f"{path}: missing tensors {sorted(missing)}")
    info = ClassifierInfo(**record["info"])
    return Classifier(
        info, tensors["latents"], tensors["coef"], tensors["intercept"], tensors["classes"]
    )
