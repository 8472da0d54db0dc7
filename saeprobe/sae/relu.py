"""The classic ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, 2024)."""

from __future__ import annotations

from torch import Tensor

from saeprobe.sae.base import DEFAULT_STEP, SparseAutoencoder, TrainStep, normalized_mse


class ReluSAE(SparseAutoencoder):
    def __init__(self, cfg, l1_coefficient: float = 5.0):
        super().__init__(cfg)
        self.l1_coefficient = l1_coefficient

    def activation(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def loss(self, x: Tensor, step: TrainStep = DEFAULT_STEP):
        xs = x * self.scale
        z = self.activation(self.pre_acts(x))
        x_hat = self.decode_scaled(z)
        fvu = normalized_mse(xs, x_hat)
        l1 = (z * self.decoder.norm(dim=1)).sum(-1).mean()
        l0 = (z > 0).sum(-1).float().mean()
        figures = {"fvu": fvu.item(), "l0": l0.item(), "l1": l1.item()}
        return fvu + self.l1_coefficient * l1, figures
