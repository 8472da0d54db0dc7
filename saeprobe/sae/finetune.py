"""Task fine-tuning as the self-regularization paper's code does it (`finetune_SAE.py`:
`identify_dead_neurons`, `TopKSAE.compute_finetune`): teach the latents that are dead on the
task to capture what the live latents miss, without disturbing the live reconstruction.

    dead  = latents whose pre-activation is never > 0 on the task's training tokens,
            recomputed at the start of every epoch
    x_hat = decode(topk over live latents(x))
    loss  = nmse(x, x_hat) + w * nmse(r, topk_raw over dead latents(x) @ W_dec)
    r     = (x - x_hat).detach(),   nmse(t, y) = mean over tokens of |t - y|^2 / |t|^2

The dead branch uses the dead latents' raw pre-activations, not their ReLU: by the
definition they are all <= 0, so a ReLU would pass no gradient and nothing would learn. (The
reference also adds b_dec to the dead branch's output; the residual has no bias left to
model, so it is left out here.) A task on which no latent is dead is an ordinary outcome:
the dead term is then empty and the live term alone is trained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from saeprobe.config import FinetuneConfig
from saeprobe.errors import ConfigError
from saeprobe.sae.base import per_token_nmse, sparse_decode, topk_among
from saeprobe.sae.evaluate import ReconstructionTally
from saeprobe.sae.kernels import selected_pre_acts
from saeprobe.sae.topk import TopKSAE
from saeprobe.sae.train import adam, check_finite, optimizer_step


@torch.no_grad()
def task_dead_latents(sae: TopKSAE, batches: Iterable[Tensor]) -> Tensor:
    """The paper's dead latents: pre-activation never > 0 on any token. (d_sae,) bool.

    A latent that has fired is settled, so each batch computes the pre-activations of the
    latents that have not fired yet only: after the first batches that is the few that
    stay dead, and the pass costs a fraction of a full encoding."""
    unfired = torch.arange(sae.cfg.d_sae, device=sae.W_enc.device)
    for x in batches:
        if len(unfired) == 0:
            break
        pre = (x * sae.scale - sae.input_b_dec) @ sae.W_enc[:, unfired] + sae.b_enc[unfired]
        unfired = unfired[~(pre > 0).any(0)]
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=sae.W_enc.device)
    dead[unfired] = True
    return dead


@dataclass(frozen=True)
class TokenStatistics:
    """What the fine-tuning report says about the task's test tokens, before and after."""

    reconstruction: dict  # reconstruction_metrics
    dead: Tensor  # (d_sae,) bool: pre-activation never > 0 (the paper's dead)
    in_code: Tensor  # (d_sae,) bool: in the top-k code (and > 0) on some token


@torch.no_grad()
def token_statistics(sae: TopKSAE, batches: Iterable[Tensor]) -> TokenStatistics:
    """Reconstruction figures, dead latents and latents in the code, from one pass over the
    tokens (reading them from disk costs more than encoding them)."""
    tally = ReconstructionTally(sae.cfg.d_sae)
    positive = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for x in batches:
        pre = sae.pre_acts(x)
        z = sae.activation(pre)
        tally.add(x, sae.decode(z), z)
        positive |= (pre > 0).any(0)
    return TokenStatistics(tally.metrics(), ~positive, tally.fired.clone())


def finetune_loss(sae: TopKSAE, x: Tensor, dead: Tensor, dead_weight: float):
    """The live branch's top-k (through a ReLU) and the dead branch's top-k (raw), both
    read at their selected latents only (`selected_pre_acts`), so that the backward pass
    costs a sparse product instead of two dense ones."""
    xs = x * sae.scale
    b_dec = sae.input_b_dec
    with torch.no_grad():
        pre = sae.pre_acts(x)
    indices = topk_among(pre, ~dead, sae.cfg.k)
    n_live = indices.shape[1]
    if dead.any():
        indices = torch.cat([indices, topk_among(pre, dead, sae.cfg.k)], dim=1)
    values = selected_pre_acts(xs, b_dec, sae.W_enc, sae.b_enc, pre, indices)
    live_values = values[:, :n_live].relu()
    x_hat = sparse_decode(indices[:, :n_live], live_values, sae.decoder) + sae.b_dec
    live = per_token_nmse(xs, x_hat)
    if not dead.any():
        return live, {"live": live.item(), "dead": 0.0}
    residual = (xs - x_hat).detach()
    dead_recon = sparse_decode(indices[:, n_live:], values[:, n_live:], sae.decoder)
    dead_loss = per_token_nmse(residual, dead_recon)
    return live + dead_weight * dead_loss, {"live": live.item(), "dead": dead_loss.item()}


def finetune_sae(
    sae: TopKSAE,
    epoch_batches: Callable[[], Iterator[Tensor]],
    training_pass: Callable[[], Iterable[Tensor]],
    cfg: FinetuneConfig,
    progress: bool = True,
) -> dict:
    """`epoch_batches()` yields one epoch of shuffled task batches each time it is called;
    `training_pass()` every training token once, to find the dead latents before each
    epoch and after the last."""
    if not isinstance(sae, TopKSAE):
        raise ConfigError("fine-tuning follows the self-regularization paper and needs a TopK SAE")
    opt = adam(sae, cfg.lr)
    history = []
    start = time.perf_counter()
    n_tokens = 0
    dead_before = task_dead_latents(sae, training_pass())
    dead = dead_before
    for epoch in range(cfg.epochs):
        if epoch:
            dead = task_dead_latents(sae, training_pass())
        sae.train()
        totals = {"live": 0.0, "dead": 0.0}
        n_batches = 0
        for x in tqdm(epoch_batches(), desc=f"finetune epoch {epoch}", disable=not progress):
            loss, figures = finetune_loss(sae, x, dead, cfg.dead_weight)
            check_finite(loss, n_batches, cfg.lr, "finetune.lr")
            optimizer_step(sae, opt, loss)
            for key in totals:
                totals[key] += figures[key]
            n_batches += 1
            n_tokens += len(x)
        sae.eval()
        n = max(1, n_batches)
        history.append(
            {
                "epoch": epoch,
                "dead_latents": int(dead.sum()),
                "live_loss": totals["live"] / n,
                "dead_loss": totals["dead"] / n,
            }
        )
    dead_after = task_dead_latents(sae, training_pass())
    return {
        "dead_latents": int(dead_before.sum()),
        "dead_latents_after": int(dead_after.sum()),
        "dead_before": dead_before,
        "history": history,
        "tokens": n_tokens,
        "timing": {"seconds": round(time.perf_counter() - start, 2)},
    }
