"""Pretraining loop: Adam, warmup and linear decay, k annealing, unit-norm decoder rows."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from tqdm import tqdm

from saeprobe.config import SAETrainConfig
from saeprobe.errors import ConfigError
from saeprobe.sae.base import SAEConfig, SparseAutoencoder, TrainStep
from saeprobe.sae.io import build_sae


def new_sae(cfg: SAETrainConfig, d_in: int, sample: np.ndarray, layer: int, model: str):
    """An SAE whose input scale and decoder bias come from a sample of the training data."""
    x = torch.from_numpy(sample)
    scale = input_scale(x, d_in) if cfg.normalize else 1.0
    sae_cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_in * cfg.expansion,
        architecture=cfg.architecture,
        k=cfg.k,
        tied=cfg.tied,
        input_scale=scale,
        layer=layer,
        model=model,
    )
    if cfg.architecture == "topk":
        sae = build_sae(
            sae_cfg,
            aux_k=cfg.aux_k,
            aux_coefficient=cfg.aux_coefficient,
            per_token_loss=cfg.loss == "per_token",
        )
    elif cfg.architecture == "relu":
        sae = build_sae(sae_cfg, l1_coefficient=cfg.l1_coefficient)
    else:
        raise ConfigError(
            f"params: 'sae.architecture' '{cfg.architecture}' cannot be trained; use topk or relu"
        )
    with torch.no_grad():
        sae.b_dec.copy_((x * scale).mean(0))
    return sae


def input_scale(x: torch.Tensor, d_in: int) -> float:
    """The power of two nearest to sqrt(d_in) / mean norm: it brings the mean norm within a
    factor sqrt(2) of sqrt(d_in), and folds into the saved weights exactly (see sae.io)."""
    return 2.0 ** round(math.log2(math.sqrt(d_in) / float(x.norm(dim=1).mean())))


def annealed_k(cfg: SAETrainConfig, frac: float) -> int:
    if cfg.k_start is None or cfg.k_anneal_fraction <= 0 or frac >= cfg.k_anneal_fraction:
        return cfg.k
    t = frac / cfg.k_anneal_fraction
    return int(round(cfg.k_start + (cfg.k - cfg.k_start) * t))


def lr_factor(cfg: SAETrainConfig, frac: float) -> float:
    if cfg.warmup_fraction > 0 and frac < cfg.warmup_fraction:
        return (frac + 1e-9) / cfg.warmup_fraction
    if cfg.decay_fraction > 0 and frac > 1 - cfg.decay_fraction:
        return max(0.0, (1 - frac) / cfg.decay_fraction)
    return 1.0


def check_finite(loss: torch.Tensor, step: int, lr: float, param: str = "sae.lr") -> None:
    if not torch.isfinite(loss):
        raise ConfigError(
            f"SAE training diverged at step {step} (loss {loss.item()}) with learning rate "
            f"{lr:g}; lower '{param}'. Nothing was written."
        )


def adam(sae: SparseAutoencoder, lr: float, betas: tuple[float, float] = (0.9, 0.999)):
    """Adam with its fused kernel where torch has one (CPU and CUDA): one pass over the
    weights instead of a dozen; on a CPU it takes a fifth of the default's time, which is a
    large share of an SAE step."""
    params = list(sae.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def optimizer_step(sae: SparseAutoencoder, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One step that keeps the decoder rows at unit norm (every SAE loop takes it)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_parallel_decoder_grad()
    opt.step()
    sae.normalize_decoder()


def train_sae(
    sae: SparseAutoencoder,
    batches: Iterator[torch.Tensor],
    cfg: SAETrainConfig,
    progress: bool = True,
) -> dict:
    steps = max(1, cfg.train_tokens // cfg.batch_size)
    opt = adam(sae, cfg.lr)
    sae.train()
    figures: dict[str, float] = {}
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"train SAE L{sae.cfg.layer}", disable=not progress)
    for step in bar:
        frac = step / steps
        lr = cfg.lr * lr_factor(cfg, frac)
        for group in opt.param_groups:
            group["lr"] = lr
        x = next(batches)
        k = min(annealed_k(cfg, frac), sae.cfg.d_sae)  # k_start may exceed a narrow SAE
        loss, figures = sae.loss(x, TrainStep(k=k, dead_after=cfg.dead_tokens))
        check_finite(loss, step, cfg.lr)
        optimizer_step(sae, opt, loss)
        if step % 10 == 0:
            bar.set_postfix(
                loss=f"{loss.item():.4f}", fvu=f"{figures['fvu']:.3f}", l0=f"{figures['l0']:.1f}"
            )
    sae.eval()
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "tokens": steps * cfg.batch_size,
        "final_train_fvu": figures.get("fvu"),
        "timing": {
            "seconds": round(seconds, 2),
            "tokens_per_s": round(steps * cfg.batch_size / seconds, 1),
        },
    }
