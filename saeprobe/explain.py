"""A saved classifier on new text: the same path as the pipeline (tokenize, run the model
to the classifier's layer, encode content tokens with its SAE, pool), then the prediction
and the latents that drove it, with the token spans that fire each latent most."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from saeprobe.classifier import Classifier
from saeprobe.config import ModelConfig
from saeprobe.errors import ConfigError
from saeprobe.extract import forward_layers, length_batches, pad_batch, tokenize
from saeprobe.features import pool_latents, sae_fingerprint
from saeprobe.models import LoadedModel, check_layers, load_model
from saeprobe.sae import load_sae
from saeprobe.sae.base import SparseAutoencoder


@dataclass
class LatentEvidence:
    latent: int
    activation: float
    weight: float
    contribution: float  # weight * activation: its share of the predicted class's score
    spans: list[str] = field(default_factory=list)  # its feature card's top contexts


@dataclass
class Prediction:
    text: str
    label: str
    probability: float
    probabilities: dict[str, float]
    latents: list[LatentEvidence] = field(default_factory=list)


@dataclass
class Explainer:
    classifier: Classifier
    model: LoadedModel
    sae: SparseAutoencoder
    cards: pl.DataFrame | None  # the SAE's feature cards, where the pipeline wrote them


def open_explainer(classifier: Classifier, device: str = "auto") -> Explainer:
    """Load the model and SAE a classifier was trained on, refusing any other."""
    info = classifier.info
    sae_dir = Path(info.sae_dir)
    if not sae_dir.exists():
        raise ConfigError(
            f"the classifier of '{info.dataset}' reads the SAE {sae_dir}, which does not exist "
            "here; run it from the pipeline's folder after `dvc repro` (or `dvc pull`)"
        )
    if sae_fingerprint(sae_dir) != info.sae_fingerprint:
        raise ConfigError(
            f"the SAE at {sae_dir} is not the one the classifier of '{info.dataset}' was "
            "trained on (its weights changed); run `dvc repro` to retrain the classifier"
        )
    sae = load_sae(sae_dir)
    if int(classifier.latents.max(initial=0)) >= sae.cfg.d_sae:
        raise ConfigError(f"{sae_dir} has {sae.cfg.d_sae} latents; the classifier reads more")
    model = load_model(ModelConfig(name=info.model, dtype=info.dtype, device=device))
    check_layers([info.layer], model.n_layers)
    if model.d_model != sae.cfg.d_in:
        raise ConfigError(
            f"model '{info.model}' has width {model.d_model}, but the SAE {sae_dir} reads "
            f"width {sae.cfg.d_in}: the classifier belongs to another model"
        )
    cards_file = sae_dir.parent / "cards.parquet"
    cards = pl.read_parquet(cards_file) if cards_file.exists() else None
    return Explainer(classifier, model, sae, cards)


@torch.no_grad()
def encode_texts(explainer: Explainer, texts: list[str]) -> sp.csr_matrix:
    """Pooled SAE codes of `texts` (docs, d_sae), as the features stage pools them."""
    info = explainer.classifier.info
    model, sae = explainer.model, explainer.sae
    ids = [str(i) for i in range(len(texts))]
    for doc_id, text in zip(ids, texts, strict=True):
        if not text.strip():
            raise ConfigError(f"text {int(doc_id) + 1} is empty")
    tokens = tokenize(model, texts, ids, info.max_length)
    pooling, top_n = feature_pooling(info.pooling)
    rows: dict[int, np.ndarray] = {}
    for batch in length_batches([len(t) for t in tokens.ids], 4096, 64):
        input_ids, attention, content = pad_batch(model, tokens, batch)
        hidden = forward_layers(
            model, input_ids.to(model.device), attention.to(model.device), [info.layer]
        )[info.layer]
        z = sae.encode(hidden[content.to(model.device)].float().cpu())
        doc_of_row = torch.repeat_interleave(torch.arange(len(batch)), content.sum(1))
        pooled = pool_latents(z, doc_of_row, len(batch), [pooling], top_n)
        values = pooled[info.pooling].numpy()
        for row, i in enumerate(batch):
            rows[i] = values[row]
    return sp.csr_matrix(np.stack([rows[i] for i in range(len(texts))]))


def feature_pooling(name: str) -> tuple[str, list[int]]:
    """`top<n>` is the topn pooling with that n; the others are themselves."""
    match = re.fullmatch(r"top(\d+)", name)
    return ("topn", [int(match.group(1))]) if match else (name, [])


def explain(explainer: Explainer, texts: list[str], top: int = 5, spans: int = 2):
    """Predictions for `texts`, each with the `top` latents that pushed most towards the
    predicted class (largest weight times activation), and their top feature-card spans."""
    classifier = explainer.classifier
    names = classifier.info.label_names
    codes = encode_texts(explainer, texts)
    proba = classifier.predict_proba(codes)
    out = []
    for i, text in enumerate(texts):
        best = int(np.argmax(proba[i]))
        # Two classes have one output, the positive class's: its evidence for the negative
        # class is its negative contributions.
        binary = len(classifier.classes) == 2
        output, sign = (0, 1.0 if best == 1 else -1.0) if binary else (best, 1.0)
        contribution = classifier.contributions(codes[i], output)[0] * sign
        activation = np.asarray(codes[i, classifier.latents].todense()).ravel()
        order = [j for j in np.argsort(-contribution, kind="stable") if contribution[j] > 0]
        evidence = [
            LatentEvidence(
                latent=int(classifier.latents[j]),
                activation=float(activation[j]),
                weight=float(classifier.coef[output, j]),
                contribution=float(contribution[j] * sign),
                spans=card_spans(explainer.cards, int(classifier.latents[j]), spans),
            )
            for j in order[:top]
        ]
        label = names[int(classifier.classes[best])]
        out.append(
            Prediction(
                text=text,
                label=label,
                probability=float(proba[i, best]),
                probabilities={
                    names[int(c)]: float(p)
                    for c, p in zip(classifier.classes, proba[i], strict=True)
                },
                latents=evidence,
            )
        )
    return out


def card_spans(cards: pl.DataFrame | None, latent: int, n: int) -> list[str]:
    if cards is None or cards.is_empty():
        return []
    rows = cards.filter(pl.col("latent") == latent).sort("rank").head(n)
    return rows["context"].to_list()
