"""The classifier that self-regularization trains, and its regularized baselines, as the
paper's code trains them (`train_simple_clf.py` `LinearRewarder`, `pipelines.py`
`TrainingConfig` and `train_CLF`).

A linear head on pooled hidden states (one weight vector per class, so the penalty reads
each class's direction; the reference's binary head is one logit, here two). AdamW; after
each epoch the validation F1 (binary, or macro over classes) is compared with the best so
far: a better one is checkpointed, and after `patience` epochs without one the learning rate
is halved and training resumes from the best checkpoint, at most `max_decays` times, then it
stops. The best checkpoint is the result. (The reference's warm-up scheduler resets the
learning rate after every step, so its decay lasts one step; here it lasts.)

The baselines add one classic regularizer each, with the reference's forms: the sum of the
parameters' (unsquared) L2 norms, dropout on the inputs, focal loss, label smoothing, and a
penalty on the weight's largest singular value (the reference's "spectral norm", computed
exactly here instead of by 10 random power iterations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import Tensor, nn
from torch.nn import functional as F

from saeprobe.config import ClassifierConfig
from saeprobe.errors import ConfigError

Penalty = Callable[[Tensor], Tensor]  # classifier weight (n_classes, d_in) -> scalar


class LinearHead(nn.Module):
    def __init__(self, d_in: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_in, n_classes)

    @property
    def weight(self) -> Tensor:
        return self.linear.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(x))


def classification_loss(logits: Tensor, y: Tensor, cfg: ClassifierConfig) -> Tensor:
    if cfg.focal_gamma == 0:
        return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    log_p = F.log_softmax(logits, dim=1)
    n_classes = logits.shape[1]
    target = F.one_hot(y, n_classes).float()
    target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / n_classes
    p_true = log_p.gather(1, y[:, None]).exp().squeeze(1)
    return ((1 - p_true) ** cfg.focal_gamma * -(target * log_p).sum(1)).mean()


def regularizers(model: LinearHead, cfg: ClassifierConfig) -> Tensor:
    total = model.weight.new_zeros(())
    if cfg.l2:
        total = total + cfg.l2 * sum(p.norm() for p in model.parameters())
    if cfg.spectral:
        total = total + cfg.spectral * torch.linalg.matrix_norm(model.weight, ord=2)
    return total


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded (train, validation) split of positions."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(fraction * len(rows))) if len(rows) > 1 else 0
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """The reference's selection score: binary F1, or macro F1 over several classes."""
    average = "binary" if n_classes == 2 else "macro"
    return float(f1_score(y, pred, average=average, zero_division=0))


@dataclass
class TrainedClassifier:
    model: LinearHead
    history: list[dict]
    best_epoch: int

    @torch.no_grad()
    def proba(self, X: np.ndarray) -> np.ndarray:
        self.model.eval()
        return F.softmax(self.model(torch.as_tensor(X, dtype=torch.float32)), 1).numpy()


def train_classifier(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cfg: ClassifierConfig,
    seed: int,
    penalty: Penalty | None = None,
) -> TrainedClassifier:
    """Fit the head on (X, y); `penalty` adds a term on its weight (self-regularization)."""
    if n_classes < 2 or len(np.unique(y)) < 2:
        raise ConfigError(f"a classifier needs two classes in its labels; got {np.unique(y)}")
    torch.manual_seed(seed)
    train, val = validation_split(y, cfg.val_fraction, seed)
    if len(val) == 0:
        raise ConfigError(f"val_fraction {cfg.val_fraction} leaves no validation examples")
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    model = LinearHead(X.shape[1], n_classes, cfg.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best_score, best_state, best_epoch = -1.0, copy.deepcopy(model.state_dict()), 0
    stale = decays = 0
    history = []
    for epoch in range(cfg.max_epochs):
        model.train()
        order = torch.from_numpy(train)[torch.randperm(len(train), generator=generator)]
        for batch in order.split(cfg.batch_size):
            loss = objective(model, Xt[batch], yt[batch], cfg, penalty)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(Xt[val]).argmax(1).numpy()
        score = f1(y[val], pred, n_classes)
        history.append({"epoch": epoch, "val_f1": score, "lr": opt.param_groups[0]["lr"]})
        if score > best_score + 1e-4:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            continue
        stale += 1
        if stale < cfg.patience:
            continue
        if decays == cfg.max_decays:
            break
        decays, stale = decays + 1, 0
        model.load_state_dict(best_state)
        for group in opt.param_groups:
            group["lr"] *= cfg.lr_decay
    model.load_state_dict(best_state)
    return TrainedClassifier(model, history, best_epoch)


def objective(
    model: LinearHead, x: Tensor, y: Tensor, cfg: ClassifierConfig, penalty: Penalty | None
) -> Tensor:
    loss = classification_loss(model(x), y, cfg) + regularizers(model, cfg)
    if penalty is not None:
        loss = loss + penalty(model.weight)
    return loss
