"""Probes on hidden states, SAE latents and text, with the paper's hyper-parameter selection."""

from saeprobe.probes.methods import ProbeConfig, fit_method, rank_latents
from saeprobe.probes.sweep import RESULT_SCHEMA, Representation, run_sweep

__all__ = [
    "RESULT_SCHEMA",
    "ProbeConfig",
    "Representation",
    "fit_method",
    "rank_latents",
    "run_sweep",
]
