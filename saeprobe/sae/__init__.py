"""Sparse autoencoders: architectures, training, task fine-tuning, evaluation, interchange."""

from saeprobe.sae.base import SAEConfig, SparseAutoencoder
from saeprobe.sae.io import build_sae, load_sae, save_sae
from saeprobe.sae.jumprelu import JumpReluSAE
from saeprobe.sae.relu import ReluSAE
from saeprobe.sae.topk import TopKSAE

__all__ = [
    "JumpReluSAE",
    "ReluSAE",
    "SAEConfig",
    "SparseAutoencoder",
    "TopKSAE",
    "build_sae",
    "load_sae",
    "save_sae",
]
