"""Pool token activations into one vector per document, over content tokens only."""

from __future__ import annotations

import torch
from torch import Tensor

from saeprobe.errors import ConfigError


def last_index(mask: Tensor) -> Tensor:
    """Index of the last True of each row of a (B, T) mask."""
    t = mask.shape[1]
    return t - 1 - mask.flip(1).to(torch.int8).argmax(dim=1)


def pool(hidden: Tensor, content: Tensor, methods: list[str]) -> dict[str, Tensor]:
    """`hidden` (B, T, D), `content` (B, T) bool marking tokens that are not BOS, CLS, SEP or
    padding. Returns float32 (B, D) per method. `first` reads position 0, the CLS token."""
    if not bool(content.any(dim=1).all()):
        raise ConfigError("a document has no content tokens to pool over")
    h = hidden.float()
    mask = content.unsqueeze(-1)
    out: dict[str, Tensor] = {}
    for method in methods:
        if method == "mean":
            out[method] = (h * mask).sum(1) / mask.sum(1)
        elif method == "max":
            out[method] = h.masked_fill(~mask, float("-inf")).amax(1)
        elif method == "last":
            rows = torch.arange(h.shape[0], device=h.device)
            out[method] = h[rows, last_index(content)]
        elif method == "first":
            out[method] = h[:, 0]
        else:
            raise ConfigError(f"unknown pooling '{method}'")
    return out
