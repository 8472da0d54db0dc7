"""SAE features per document: encode cached token activations, pool, store sparse.

The pooled codes are stored in features.h5 (see `saeprobe.store.write_feature_file`).
Poolings: mean, max, sum, last (over content tokens) and MOSAIC's top-n count: per token the
indices of its n largest latents become one-hot, summed over the document's tokens; one
matrix per n, stored as `top<n>`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from saeprobe.config import FEATURE_POOLINGS
from saeprobe.errors import ConfigError
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.sae.io import WEIGHTS
from saeprobe.store import TokenStore


def sae_fingerprint(folder: str | Path) -> str:
    """Content hash of a saved SAE's weights, recorded beside the features made with it."""
    path = Path(folder) / WEIGHTS
    if not path.exists():
        raise ConfigError(f"SAE {folder} has no {WEIGHTS}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def sae_task_docs(folder: str | Path) -> int:
    """How many of the task's texts a saved SAE was fine-tuned on (0 for a pretrained one)."""
    cfg_file = Path(folder) / "cfg.json"
    return int(json.loads(cfg_file.read_text()).get("task_docs", 0)) if cfg_file.exists() else 0


@torch.no_grad()
def pool_latents(
    z: torch.Tensor, doc_of_row: torch.Tensor, n_docs: int, poolings: list[str], top_n: list[int]
) -> dict[str, torch.Tensor]:
    """Pool a chunk's token codes `z` (rows, d_sae) into (n_docs, d_sae) per pooling (the
    top-n count once per n, as `top<n>`)."""
    out: dict[str, torch.Tensor] = {}
    d = z.shape[1]
    counts = torch.bincount(doc_of_row, minlength=n_docs).clamp_min(1).unsqueeze(1)
    index = doc_of_row.unsqueeze(1).expand(-1, d)
    for pooling in poolings:
        if pooling in ("sum", "mean"):
            total = torch.zeros(n_docs, d).index_add_(0, doc_of_row, z)
            out[pooling] = total / counts if pooling == "mean" else total
        elif pooling == "max":
            out[pooling] = torch.zeros(n_docs, d).scatter_reduce_(0, index, z, "amax")
        elif pooling == "last":
            last_row = torch.zeros(n_docs, dtype=torch.long).scatter_reduce_(
                0, doc_of_row, torch.arange(len(z)), "amax"
            )
            out[pooling] = z[last_row]
        elif pooling == "topn":
            for n in top_n:
                values, indices = z.topk(min(n, d), dim=1)
                onehot = torch.zeros_like(z).scatter_(1, indices, (values > 0).float())
                out[f"top{n}"] = torch.zeros(n_docs, d).index_add_(0, doc_of_row, onehot)
        else:
            raise ConfigError(
                f"params: unknown feature pooling '{pooling}'; expected some of {FEATURE_POOLINGS}"
            )
    return out


@torch.no_grad()
def encode_documents(
    sae: SparseAutoencoder,
    store: TokenStore,
    layer: int,
    poolings: list[str],
    top_n: list[int],
    docs_per_chunk: int = 64,
) -> dict[str, sp.csr_matrix]:
    """Pooled SAE codes of every document of the store, as CSR matrices in store order."""
    if sae.cfg.d_in != store.d_model:
        raise ConfigError(f"SAE reads width {sae.cfg.d_in}; {store.path} has width {store.d_model}")
    parts: dict[str, list[sp.csr_matrix]] = {}
    for doc_ids, offsets, x in store.iter_docs(layer, docs_per_chunk):
        z = sae.encode(torch.from_numpy(x))
        doc_of_row = torch.from_numpy(np.repeat(np.arange(len(doc_ids)), np.diff(offsets)))
        for pooling, pooled in pool_latents(z, doc_of_row, len(doc_ids), poolings, top_n).items():
            parts.setdefault(pooling, []).append(sp.csr_matrix(pooled.numpy().astype(np.float32)))
    return {p: sp.vstack(m, format="csr") for p, m in parts.items()}
