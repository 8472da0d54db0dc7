"""What every SAE shares: parameters named as SAELens names them, input scaling, the interface.

    pre_acts(x) = (x * scale - b_dec) @ W_enc + b_enc
    encode(x)   = activation(pre_acts(x))             (B, d_sae), sparse
    decode(z)   = (z @ W_dec + b_dec) / scale         (B, d_in)

`scale` maps activations to a mean norm near sqrt(d_in) (a power of two, see
sae.train.input_scale), so hyper-parameters transfer across layers and models; it is saved
with the SAE, folded into the weights, so new data is encoded at the same scale.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TrainStep:
    """What the training loop tells every architecture's loss besides the batch."""

    k: int | None = None  # TopK: the annealed k of this step (None: cfg.k)
    dead_after: int = 0  # TopK: tokens without firing after which a latent is dead (AuxK)


DEFAULT_STEP = TrainStep()


@dataclass
class SAEConfig:
    d_in: int
    d_sae: int
    architecture: str = "topk"
    k: int = 32
    tied: bool = False
    # Gemma Scope and some SAELens SAEs encode x, not x - b_dec.
    apply_b_dec_to_input: bool = True
    input_scale: float = 1.0
    layer: int | None = None
    model: str | None = None


class SparseAutoencoder(nn.Module, abc.ABC):
    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        if not cfg.tied:
            self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in))
        self.register_buffer("scale", torch.tensor(float(cfg.input_scale)))
        self.reset_parameters()

    @property
    def decoder(self) -> Tensor:
        """(d_sae, d_in). Tied SAEs read the encoder's transpose, so the two never drift."""
        return self.W_enc.T if self.cfg.tied else self.W_dec

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Decoder rows of unit norm and an encoder that starts as its transpose.
        w = torch.randn(self.cfg.d_sae, self.cfg.d_in)
        w /= w.norm(dim=1, keepdim=True)
        self.W_enc.copy_(w.T)
        if not self.cfg.tied:
            self.W_dec.copy_(w)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        if not self.cfg.tied:
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the gradient component along each unit-norm decoder row: renormalizing after
        the step would undo it anyway, and keeping it distorts Adam's moment estimates."""
        if self.cfg.tied or self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
        self.W_dec.grad -= parallel * self.W_dec

    @property
    def input_b_dec(self) -> Tensor:
        """What the encoder subtracts from the scaled input: b_dec, or zeros for SAEs that
        encode x itself."""
        return self.b_dec if self.cfg.apply_b_dec_to_input else torch.zeros_like(self.b_dec)

    def pre_acts(self, x: Tensor) -> Tensor:
        return (x * self.scale - self.input_b_dec) @ self.W_enc + self.b_enc

    @abc.abstractmethod
    def activation(self, pre: Tensor) -> Tensor:
        """Sparse code from pre-activations; each architecture defines its own."""

    def encode(self, x: Tensor) -> Tensor:
        return self.activation(self.pre_acts(x))

    def decode_scaled(self, z: Tensor) -> Tensor:
        """Reconstruction in the scaled space the SAE is trained in."""
        return z @ self.decoder + self.b_dec

    def decode(self, z: Tensor) -> Tensor:
        return self.decode_scaled(z) / self.scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encode(x)
        return self.decode(z), z

    def loss(self, x: Tensor, step: TrainStep = DEFAULT_STEP) -> tuple[Tensor, dict[str, float]]:
        """Training loss on a batch of raw activations, and figures to log (fvu, l0, ...)."""
        raise TypeError(f"{type(self).__name__} is for inference only; it cannot be trained")


def normalized_mse(x: Tensor, x_hat: Tensor) -> Tensor:
    """||x - x_hat||^2 / ||x - mean(x)||^2 over the batch: the fraction of variance unexplained."""
    return (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def per_token_nmse(target: Tensor, x_hat: Tensor) -> Tensor:
    """Each token's squared error over its squared norm, averaged: the self-regularization
    code's `normalized_l2`."""
    err = (target - x_hat).pow(2).sum(-1)
    return (err / target.pow(2).sum(-1).clamp_min(1e-12)).mean()


def topk_among(pre: Tensor, keep: Tensor, k: int) -> Tensor:
    """Indices of the k largest pre-activations among the latents in `keep` (bool, d_sae);
    fewer where `keep` holds fewer than k."""
    k = min(k, int(keep.sum()))
    return pre.masked_fill(~keep, float("-inf")).topk(k, dim=-1, sorted=False).indices


def sparse_decode(indices: Tensor, values: Tensor, decoder: Tensor) -> Tensor:
    """sum_j values[:, j] * decoder[indices[:, j]] without materializing the (B, d_sae) code."""
    return F.embedding_bag(indices, decoder, per_sample_weights=values, mode="sum")
