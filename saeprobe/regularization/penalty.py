"""What the self-regularized classifier is kept from: the unintended latents of an SAE.

Two mechanisms, switched separately (the paper's ablation):

    removal:  x' = x - decode(relu(pre_acts(x)) on U only)
              the unintended latents' share of the reconstruction taken out of the input
              (every positive pre-activation, not only the top k, and the decoder bias
              with it: `SelfReg.decompose_features`)
    penalty:  lambda * mean_{c, j in U} |S_cj|,    S = (w_c - b_dec) W_enc + b_enc

S is the SAE pre-activation of each class's weight vector w_c read as if it were an
activation (`SelfReg.compute_constraint`): a weight that points along an unintended latent's
encoder direction pre-activates it, and the penalty pushes that alignment down. In the
reference the SAE and the classifier read the same vectors; here the SAE reads activations
times its input `scale` (`sae_units`), so w must be the classifier's weight in those units
(experiment.run_methods standardizes the inputs and hands the penalty w / std).
"""

from __future__ import annotations

import torch
from torch import Tensor

from saeprobe.errors import ConfigError
from saeprobe.sae.base import SparseAutoencoder


def check_latents(sae: SparseAutoencoder, unintended: Tensor) -> Tensor:
    """The unintended latents as a long tensor of distinct indices within the SAE's width."""
    latents = torch.as_tensor(unintended, dtype=torch.long).unique()
    if latents.numel() and (latents.min() < 0 or latents.max() >= sae.cfg.d_sae):
        raise ConfigError(
            f"unintended latents must lie in [0, {sae.cfg.d_sae}) for this SAE; "
            f"got {latents.min().item()}..{latents.max().item()}"
        )
    return latents


def sae_units(sae: SparseAutoencoder, x: Tensor) -> Tensor:
    """Activations in the units the SAE reads (times its input scale): the classifier's
    inputs, so that its weight lives where the SAE's encoder does."""
    return x * sae.scale


def weight_preacts(sae: SparseAutoencoder, weight: Tensor) -> Tensor:
    """S = (w - b_dec) W_enc + b_enc for each row of a classifier weight (n_classes, d_in)
    that reads `sae_units` (pre_acts scales its input, so w goes in unscaled)."""
    return sae.pre_acts(weight / sae.scale)


def alignment_penalty(sae: SparseAutoencoder, weight: Tensor, unintended: Tensor) -> Tensor:
    """mean over classes and unintended latents of |S|; zero when nothing is unintended."""
    if unintended.numel() == 0:
        return weight.new_zeros(())
    return weight_preacts(sae, weight)[:, unintended].abs().mean()


@torch.no_grad()
def remove_latents(
    sae: SparseAutoencoder, x: Tensor, unintended: Tensor, batch_size: int = 4096
) -> Tensor:
    """x minus the decoding of its unintended latents' positive pre-activations (the decoder
    bias included, a constant shift that the classifier's bias absorbs, as the reference
    keeps it); an empty set leaves x as it is."""
    if unintended.numel() == 0:
        return x.clone()
    decoder = sae.decoder[unintended]
    parts = []
    for chunk in x.split(batch_size):
        z = sae.pre_acts(chunk)[:, unintended].relu()
        parts.append(chunk - (z @ decoder + sae.b_dec) / sae.scale)
    return torch.cat(parts)
