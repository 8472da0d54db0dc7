"""SAE steps whose backward pass reads only the selected latents, against plain autograd.

    python bench/sae_sparse_grads.py [--steps 20] [--dead-share 0.5] [--threads 2]

Fine-tuning (`finetune_loss`: a live and a dead top-k branch) and AuxK pretraining steps
(`TopKSAE.loss` with dead latents) read pre-activations at a few latents per token; their
gradients then need only a sparse product (`saeprobe.sae.kernels.selected_pre_acts`).
This times, in one process and on the same batches and weights, full optimizer steps of
the default SAE (width 640 x 8, k 32, batches of 1,024, AuxK k 256) with saeprobe's loss
and with the same loss by plain autograd through the dense pre-activations (written out
below), and prints tokens/s of each and their ratio. The activations are Gaussian and a
fixed share of latents is marked dead (`--dead-share`): the step's cost does not depend on
the values, only on the shapes and on whether any latent is dead.
"""

from __future__ import annotations

import argparse
import time

import torch

from saeprobe.sae.base import (
    SAEConfig,
    TrainStep,
    normalized_mse,
    per_token_nmse,
    sparse_decode,
    topk_among,
)
from saeprobe.sae.finetune import finetune_loss
from saeprobe.sae.kernels import topk_encode
from saeprobe.sae.topk import TopKSAE
from saeprobe.sae.train import adam, optimizer_step


def dense_finetune_loss(sae: TopKSAE, x, dead, dead_weight: float):
    """The fine-tuning loss as it was before the sparse kernel: autograd through `pre`."""
    xs = x * sae.scale
    pre = sae.pre_acts(x)
    keep = topk_among(pre.detach(), ~dead, sae.cfg.k)
    x_hat = sparse_decode(keep, pre.gather(1, keep).relu(), sae.decoder) + sae.b_dec
    residual = (xs - x_hat).detach()
    dead_idx = topk_among(pre.detach(), dead, sae.cfg.k)
    dead_recon = sparse_decode(dead_idx, pre.gather(1, dead_idx), sae.decoder)
    return per_token_nmse(xs, x_hat) + dead_weight * per_token_nmse(residual, dead_recon), {}


def dense_auxk_loss(sae: TopKSAE, x, dead):
    xs = x * sae.scale
    values, indices, pre = topk_encode(xs, sae.b_dec, sae.W_enc, sae.b_enc, sae.cfg.k)
    x_hat = sparse_decode(indices, values, sae.decoder) + sae.b_dec
    aux_idx = topk_among(pre.detach(), dead, sae.aux_k)
    aux = sparse_decode(aux_idx, pre.gather(1, aux_idx).relu(), sae.decoder)
    loss = normalized_mse(xs, x_hat)
    return loss + sae.aux_coefficient * normalized_mse((xs - x_hat).detach(), aux), {}


def tokens_per_s(loss_fn, batches: list[torch.Tensor], seed: int) -> float:
    torch.manual_seed(seed)
    sae = TopKSAE(SAEConfig(d_in=640, d_sae=5120, k=32), aux_k=256)
    opt = adam(sae, 5e-5)
    loss_fn(sae, batches[0])  # warm up the kernels
    start = time.perf_counter()
    for x in batches:
        loss, _ = loss_fn(sae, x)
        optimizer_step(sae, opt, loss)
    return sum(len(x) for x in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dead-share", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(1024, 640, generator=generator) for _ in range(args.steps)]
    dead = torch.rand(5120, generator=generator) < args.dead_share
    step = TrainStep(k=32, dead_after=1)
    cases = {
        "fine-tuning": (
            lambda sae, x: finetune_loss(sae, x, dead, 0.1),
            lambda sae, x: dense_finetune_loss(sae, x, dead, 0.1),
        ),
        "AuxK pretraining": (
            lambda sae, x: (sae.tokens_since_fired.copy_(dead * 10), sae.loss(x, step))[1],
            lambda sae, x: dense_auxk_loss(sae, x, dead),
        ),
    }
    print(f"{args.steps} steps of 1,024 tokens, {args.threads} threads, dead {args.dead_share}")
    print(f"{'step':18s} {'sparse tok/s':>13s} {'dense tok/s':>12s} {'ratio':>6s}")
    for name, (sparse, dense) in cases.items():
        fast, slow = tokens_per_s(sparse, batches, 0), tokens_per_s(dense, batches, 0)
        print(f"{name:18s} {fast:13.0f} {slow:12.0f} {fast / slow:6.2f}")


if __name__ == "__main__":
    main()
