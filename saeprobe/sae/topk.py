"""TopK SAE (Gao et al.; the self-regularization paper's): keep the k largest pre-activations."""

from __future__ import annotations

import torch
from torch import Tensor

from saeprobe.sae.base import (
    DEFAULT_STEP,
    SparseAutoencoder,
    TrainStep,
    normalized_mse,
    per_token_nmse,
    sparse_decode,
    topk_among,
)
from saeprobe.sae.kernels import selected_pre_acts, topk_encode


class TopKSAE(SparseAutoencoder):
    """k may be annealed during training: `TrainStep.k` overrides cfg.k."""

    def __init__(
        self, cfg, aux_k: int = 0, aux_coefficient: float = 1 / 32, per_token_loss: bool = False
    ):
        super().__init__(cfg)
        self.aux_k = aux_k
        self.aux_coefficient = aux_coefficient
        # The training loss: FVU over the batch, or (the self-regularization code's) each
        # token's error over its own squared norm.
        self.per_token_loss = per_token_loss
        # Tokens since each latent last fired, for the AuxK loss on dead latents.
        self.register_buffer("tokens_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    def topk(self, pre: Tensor, k: int | None = None) -> tuple[Tensor, Tensor]:
        values, indices = pre.topk(k or self.cfg.k, dim=-1, sorted=False)
        return values.relu(), indices

    def activation(self, pre: Tensor) -> Tensor:
        values, indices = self.topk(pre)
        return torch.zeros_like(pre).scatter_(-1, indices, values)

    def loss(self, x: Tensor, step: TrainStep = DEFAULT_STEP):
        xs = x * self.scale
        b_dec = self.input_b_dec
        k = step.k or self.cfg.k
        values, indices, pre = topk_encode(xs, b_dec, self.W_enc, self.b_enc, k)
        x_hat = sparse_decode(indices, values, self.decoder) + self.b_dec
        fvu = normalized_mse(xs, x_hat)
        loss = per_token_nmse(xs, x_hat) if self.per_token_loss else fvu
        figures = {"fvu": fvu.item(), "l0": (values > 0).sum(-1).float().mean().item()}
        if self.training:
            self._track_firing(indices, values, len(x))
        if self.aux_k and step.dead_after:
            dead = self.tokens_since_fired > step.dead_after
            if dead.any():
                aux = self.aux_loss(xs, b_dec, pre.detach(), dead, (xs - x_hat).detach())
                loss = loss + self.aux_coefficient * aux
                figures["aux"] = aux.item()
        return loss, figures

    def aux_loss(
        self, xs: Tensor, b_dec: Tensor, pre: Tensor, dead: Tensor, residual: Tensor
    ) -> Tensor:
        """Reconstruct what the live latents missed with the top dead latents (AuxK). Their
        pre-activations are read at the selected latents only, so the backward pass stays
        sparse (`pre` is the encoder's, without a graph)."""
        indices = topk_among(pre, dead, self.aux_k)
        values = selected_pre_acts(xs, b_dec, self.W_enc, self.b_enc, pre, indices).relu()
        return normalized_mse(residual, sparse_decode(indices, values, self.decoder))

    @torch.no_grad()
    def _track_firing(self, indices: Tensor, values: Tensor, n_tokens: int) -> None:
        fired = torch.zeros_like(self.tokens_since_fired, dtype=torch.bool)
        fired[indices[values > 0]] = True
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[fired] = 0
