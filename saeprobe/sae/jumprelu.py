"""JumpReLU SAE (the Gemma Scope form): a latent fires only above its own threshold.

Inference only: it is here so that published SAEs load and run."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from saeprobe.sae.base import SparseAutoencoder


class JumpReluSAE(SparseAutoencoder):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae))

    def activation(self, pre: Tensor) -> Tensor:
        # The ReLU matters only for a negative threshold; SAELens applies it too.
        return pre.relu() * (pre > self.threshold)
