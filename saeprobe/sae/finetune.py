"""Task fine-tuning (the self-regularization paper): teach the latents that never fire on the
task to capture what the live latents miss, without disturbing the live reconstruction.

    loss = NMSE(x, x_hat) + w * NMSE(r, topk_dead(x) @ W_dec)
    x_hat = decode(topk_live(x)),  r = (x - x_hat).detach()

A task on which every latent fires is an ordinary outcome: the dead term is then empty, the
live term alone is trained, and the report records zero dead latents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor
from tqdm import tqdm

from saeprobe.config import FinetuneConfig
from saeprobe.errors import ConfigError
from saeprobe.sae.base import masked_topk, normalized_mse, sparse_decode
from saeprobe.sae.topk import TopKSAE
from saeprobe.sae.train import check_finite, optimizer_step


@torch.no_grad()
def task_dead_latents(sae: TopKSAE, batches: Iterable[Tensor]) -> Tensor:
    """Latents that never fire on any token of the task: (d_sae,) bool."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for x in batches:
        values, indices = sae.topk(sae.pre_acts(x))
        fired[indices[values > 0]] = True
    return ~fired


def finetune_loss(sae: TopKSAE, x: Tensor, dead: Tensor, dead_weight: float):
    xs = x * sae.scale
    pre = sae.pre_acts(x)
    values, indices = masked_topk(pre, ~dead, sae.cfg.k)
    x_hat = sparse_decode(indices, values, sae.decoder) + sae.b_dec
    live = normalized_mse(xs, x_hat)
    if not dead.any():
        return live, {"fvu_live": live.item(), "dead": 0.0}
    residual = (xs - x_hat).detach()
    d_values, d_indices = masked_topk(pre, dead, sae.cfg.k)
    dead_loss = normalized_mse(residual, sparse_decode(d_indices, d_values, sae.decoder))
    return live + dead_weight * dead_loss, {"fvu_live": live.item(), "dead": dead_loss.item()}


def finetune_sae(
    sae: TopKSAE,
    epoch_batches: Callable[[], Iterator[Tensor]],
    dead: Tensor,
    cfg: FinetuneConfig,
    progress: bool = True,
) -> dict:
    """`epoch_batches()` yields one epoch of shuffled task batches each time it is called."""
    if not isinstance(sae, TopKSAE):
        raise ConfigError("fine-tuning follows the self-regularization paper and needs a TopK SAE")
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    sae.train()
    history = []
    start = time.perf_counter()
    n_tokens = 0
    for epoch in range(cfg.epochs):
        totals = {"fvu_live": 0.0, "dead": 0.0}
        n_batches = 0
        for x in tqdm(epoch_batches(), desc=f"finetune epoch {epoch}", disable=not progress):
            loss, figures = finetune_loss(sae, x, dead, cfg.dead_weight)
            check_finite(loss, n_batches, cfg.lr, "finetune.lr")
            optimizer_step(sae, opt, loss)
            for key in totals:
                totals[key] += figures[key]
            n_batches += 1
            n_tokens += len(x)
        n = max(1, n_batches)
        history.append(
            {"epoch": epoch, "fvu_live": totals["fvu_live"] / n, "dead_loss": totals["dead"] / n}
        )
    sae.eval()
    return {
        "dead_latents": int(dead.sum()),
        "history": history,
        "tokens": n_tokens,
        "timing": {"seconds": round(time.perf_counter() - start, 2)},
    }
