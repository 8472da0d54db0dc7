"""The sparse-probing paper's attention-pooling probe (`train_attn_probing` in its
run_multi_token_acts.py): a probe that reads every token of a document. A learned vector
scores each token, a softmax over the document's tokens weighs them, and an output vector
reads the weighted sum of the raw activations:

    a = softmax_t(x_t . v_attn),   logit = (sum_t a_t x_t) . v_out + b

As the paper's code: both vectors start at N(0, 0.001^2), Adam at lr 1e-4 takes `steps`
full-batch steps on the logistic loss (plus an optional L2 on both vectors), and the
parameters of the step with the best validation AUC on an 80/20 split of the training set
are kept. Padding is masked out of the softmax (the paper masks scores that are exactly 0,
which are its zeroed padding). Ours beyond the paper: the split is seeded, and a task with
more than two classes gets one output vector per class and the cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedShuffleSplit
from torch import nn

from saeprobe.config import AttentionProbeConfig
from saeprobe.errors import Infeasible
from saeprobe.probes.validation import auc


class AttentionProbe(nn.Module):
    def __init__(self, d_model: int, n_classes: int, generator: torch.Generator):
        super().__init__()
        n_out = 1 if n_classes == 2 else n_classes

        def small(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=generator) * 0.001)

        self.attn_vector = small(d_model)
        self.output_vector = small(d_model, n_out)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (docs, tokens, d), mask (docs, tokens) true on real tokens -> logits (docs, n_out)."""
        scores = (x @ self.attn_vector).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), x).squeeze(1)  # no (docs, tokens, d) temporary
        return pooled @ self.output_vector + self.bias


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def pad(docs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged (tokens, d) arrays -> a zero-padded (n, longest, d) tensor and its mask."""
    longest = max(len(doc) for doc in docs)
    x = torch.zeros(len(docs), longest, docs[0].shape[1])
    mask = torch.zeros(len(docs), longest, dtype=torch.bool)
    for i, doc in enumerate(docs):
        x[i, : len(doc)] = torch.from_numpy(np.asarray(doc, dtype=np.float32))
        mask[i, : len(doc)] = True
    return x, mask


@dataclass
class FittedAttentionProbe:
    model: AttentionProbe
    step: int  # the step whose parameters validation AUC kept
    val_auc: float

    @torch.no_grad()
    def predict_proba(self, docs: list[np.ndarray]) -> np.ndarray:
        proba = np.zeros((len(docs), max(2, self.model.bias.shape[0])))
        for rows in length_buckets(docs):
            x, mask = pad([docs[i] for i in rows])
            proba[rows] = probabilities(self.model(x, mask)).numpy()
        return proba


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, stratified split of the training set: (fit rows, validation rows)."""
    counts = np.bincount(y)
    if (counts[counts > 0] < 2).any():
        raise Infeasible(
            f"attention probe: class counts {counts.tolist()}; the validation split needs "
            "two examples of each class"
        )
    n_val = max(int(round(fraction * len(y))), len(np.unique(y)))
    n_val = min(n_val, len(y) - len(np.unique(y)))
    split = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    fit, val = next(split.split(np.zeros(len(y)), y))
    return fit, val


def length_buckets(docs: list[np.ndarray], n_buckets: int = 8) -> list[np.ndarray]:
    """Indices of `docs` in groups of similar length, so that padding stays small."""
    order = np.argsort([len(doc) for doc in docs], kind="stable")
    return [part for part in np.array_split(order, min(n_buckets, len(docs))) if len(part)]


class Batches:
    """A set of documents as padded length buckets: the full batch, computed in parts."""

    def __init__(self, docs: list[np.ndarray], y: np.ndarray):
        self.parts = []
        for rows in length_buckets(docs):
            x, mask = pad([docs[i] for i in rows])
            self.parts.append((rows, x, mask))
        self.y = y
        self.n = len(docs)

    def logits(self, model: AttentionProbe) -> tuple[torch.Tensor, np.ndarray]:
        """Logits of every document and the documents' order."""
        rows = np.concatenate([r for r, _, _ in self.parts])
        return torch.cat([model(x, mask) for _, x, mask in self.parts]), rows


def fit_attention_probe(
    docs: list[np.ndarray], y: np.ndarray, n_classes: int, cfg: AttentionProbeConfig, seed: int
) -> FittedAttentionProbe:
    generator = torch.Generator().manual_seed(seed)
    fit, val = validation_split(np.asarray(y), cfg.val_fraction, seed)
    # One full-batch step per iteration, as the paper; computed over length buckets, which
    # gives the same loss and gradient without padding every document to the longest.
    fitting = Batches([docs[i] for i in fit], y[fit])
    validating = Batches([docs[i] for i in val], y[val])
    model = AttentionProbe(docs[0].shape[1], n_classes, generator)
    binary = n_classes == 2
    loss_fn = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best_auc, best_step = -1.0, 0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, cfg.steps + 1):
        optimizer.zero_grad()
        logits, rows = fitting.logits(model)
        labels = torch.from_numpy(np.asarray(fitting.y[rows], dtype=np.int64))
        loss = loss_fn(logits, labels.float().unsqueeze(1)) if binary else loss_fn(logits, labels)
        if cfg.l2:
            penalty = model.output_vector.square().sum() + model.attn_vector.square().sum()
            loss = loss + cfg.l2 * penalty
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            logits, rows = validating.logits(model)
            val_auc = auc(validating.y[rows], probabilities(logits).numpy())
        if val_auc > best_auc:
            best_auc, best_step = val_auc, step
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return FittedAttentionProbe(model, step=best_step, val_auc=float(best_auc))
