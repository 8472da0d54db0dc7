"""SAE quality on held-out tokens, and the LM loss with the SAE spliced into the residual."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch.nn import functional as F

from saeprobe.models import LoadedModel, decoder_layers, head_logits, head_runs_apart
from saeprobe.sae.base import SparseAutoencoder


class ReconstructionTally:
    """Running sums for `reconstruction_metrics`, so that one pass over the tokens can also
    collect other statistics beside them."""

    def __init__(self, d_sae: int):
        self.sse = self.sum_sq = self.l0 = 0.0
        self.sum_x: Tensor | float = 0.0
        self.n = 0
        self.fired = torch.zeros(d_sae, dtype=torch.bool)  # latents ever in the code

    def add(self, x: Tensor, x_hat: Tensor, z: Tensor) -> None:
        active = z > 0
        self.sse += float((x - x_hat).pow(2).sum())
        self.sum_x = self.sum_x + x.double().sum(0)
        self.sum_sq += float(x.double().pow(2).sum())
        self.l0 += float(active.sum())
        self.fired |= active.any(0)
        self.n += len(x)

    def metrics(self) -> dict:
        if self.n == 0:
            return {"tokens": 0}
        total_var = self.sum_sq - float((self.sum_x * self.sum_x).sum()) / self.n
        return {
            "tokens": self.n,
            "fvu": self.sse / total_var,
            "l0": self.l0 / self.n,
            "dead_share": float((~self.fired).float().mean()),
        }


@torch.no_grad()
def reconstruction_metrics(sae: SparseAutoencoder, batches: Iterable[Tensor]) -> dict:
    """Fraction of variance unexplained, mean L0 and the share of latents that never fired."""
    tally = ReconstructionTally(sae.cfg.d_sae)
    for x in batches:
        x_hat, z = sae(x)
        tally.add(x, x_hat, z)
    return tally.metrics()


@torch.no_grad()
def spliced_ce(
    lm: LoadedModel,
    sae: SparseAutoencoder | None,
    layer: int,
    input_ids: Tensor,
    attention: Tensor,
    content: Tensor,
    mode: str,
) -> tuple[float, int]:
    """Summed next-token CE over content targets with layer `layer` (hidden_states index)
    left clean, replaced by the SAE's reconstruction, or zeroed on content tokens."""
    blocks = decoder_layers(lm.model, lm.n_layers)

    def patch(h: Tensor) -> Tensor:
        if mode == "clean":
            return h
        mask = content.unsqueeze(-1)
        new = (
            torch.zeros_like(h) if mode == "zero" else sae.decode(sae.encode(h.float())).to(h.dtype)
        )
        return torch.where(mask, new, h)

    def hook(_module, _args, output):
        if isinstance(output, tuple):
            return (patch(output[0]), *output[1:])
        return patch(output)

    handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        return _summed_ce(lm, input_ids, attention, content[:, 1:])
    finally:
        handle.remove()


def _summed_ce(lm: LoadedModel, input_ids: Tensor, attention: Tensor, scored: Tensor):
    """Summed next-token CE where `scored` (the targets' mask) is true. The LM head (for
    Gemma, 262k vocabulary rows: more work than the blocks) runs on those positions only."""
    model = lm.model
    targets = input_ids[:, 1:]
    if not head_runs_apart(model):
        logits = model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits
        logits = logits[:, :-1][scored]
    else:
        hidden = model.get_decoder()(
            input_ids=input_ids, attention_mask=attention, use_cache=False
        ).last_hidden_state
        logits = head_logits(model, hidden[:, :-1][scored])
    ce = F.cross_entropy(logits.float(), targets[scored], reduction="sum")
    return float(ce), int(scored.sum())


def ce_loss_recovered(
    lm: LoadedModel,
    sae: SparseAutoencoder,
    layer: int,
    texts: list[str],
    max_length: int,
    batch_size: int = 8,
) -> dict:
    """CE clean, spliced and zero-ablated; recovered = (zero - sae) / (zero - clean)."""
    if not 1 <= layer < lm.n_layers:
        return {"ce_loss_recovered": None, "note": f"layer {layer} cannot be spliced"}
    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    count = 0
    tok = lm.tokenizer
    for i in range(0, len(texts), batch_size):
        enc = tok(
            texts[i : i + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        attention = enc["attention_mask"].bool().to(lm.device)
        content = attention & (enc["special_tokens_mask"] == 0).to(lm.device)
        ids = enc["input_ids"].to(lm.device)
        for mode in totals:
            ce, n = spliced_ce(lm, sae, layer, ids, attention, content, mode)
            totals[mode] += ce
        count += n
    clean, with_sae, zero = (totals[m] / max(count, 1) for m in ("clean", "sae", "zero"))
    recovered = (zero - with_sae) / (zero - clean) if zero != clean else None
    return {
        "ce_clean": clean,
        "ce_sae": with_sae,
        "ce_zero": zero,
        "ce_loss_recovered": recovered,
        "ce_tokens": count,
    }
