"""SAE features per document: encode cached token activations, pool, store sparse.

features.h5 layout (one file per data set and layer):
    doc_ids                          (n_docs,) str, in the token store's order
    <sae>/<pooling>/{data, indices, indptr}   CSR matrix (n_docs, d_sae), float32
    attrs["<sae>.fingerprint"]       hash of the SAE weights the features came from
Poolings: mean, max, sum, last (over content tokens) and MOSAIC's top-n count: per token the
indices of its n largest latents become one-hot, summed over the document's tokens.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
import torch

from saeprobe.errors import ConfigError
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.sae.io import WEIGHTS
from saeprobe.store import TokenStore

FEATURE_POOLINGS = ("mean", "max", "sum", "last", "topn")


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


@torch.no_grad()
def pool_latents(
    z: torch.Tensor, doc_of_row: torch.Tensor, n_docs: int, poolings: list[str], top_n: int
) -> dict[str, torch.Tensor]:
    """Pool a chunk's token codes `z` (rows, d_sae) into (n_docs, d_sae) per pooling."""
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
            values, indices = z.topk(min(top_n, d), dim=1)
            onehot = torch.zeros_like(z).scatter_(1, indices, (values > 0).float())
            out[pooling] = torch.zeros(n_docs, d).index_add_(0, doc_of_row, onehot)
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
    top_n: int,
    docs_per_chunk: int = 64,
) -> dict[str, sp.csr_matrix]:
    """Pooled SAE codes of every document of the store, as CSR matrices in store order."""
    if sae.cfg.d_in != store.d_model:
        raise ConfigError(f"SAE reads width {sae.cfg.d_in}; {store.path} has width {store.d_model}")
    parts: dict[str, list[sp.csr_matrix]] = {p: [] for p in poolings}
    for doc_ids, offsets, x in store.iter_docs(layer, docs_per_chunk):
        z = sae.encode(torch.from_numpy(x))
        doc_of_row = torch.from_numpy(np.repeat(np.arange(len(doc_ids)), np.diff(offsets)))
        for pooling, pooled in pool_latents(z, doc_of_row, len(doc_ids), poolings, top_n).items():
            parts[pooling].append(sp.csr_matrix(pooled.numpy().astype(np.float32)))
    return {p: sp.vstack(m, format="csr") for p, m in parts.items()}


def write_features(
    h5: h5py.File, sae_name: str, fingerprint: str, features: dict[str, sp.csr_matrix]
) -> None:
    h5.attrs[f"{sae_name}.fingerprint"] = fingerprint
    for pooling, matrix in features.items():
        group = h5.create_group(f"{sae_name}/{pooling}")
        group.attrs["shape"] = matrix.shape
        for key in ("data", "indices", "indptr"):
            group.create_dataset(key, data=getattr(matrix, key), compression="gzip")


class FeatureFile:
    """Read-only view of features.h5."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"SAE features {self.path} do not exist; run the features stage")
        with h5py.File(self.path, "r") as h5:
            self.doc_ids = [s.decode() if isinstance(s, bytes) else s for s in h5["doc_ids"][:]]
            self.fingerprints = {
                k.removesuffix(".fingerprint"): str(v)
                for k, v in h5.attrs.items()
                if k.endswith(".fingerprint")
            }

    def matrix(self, sae_name: str, pooling: str, expected_fingerprint: str | None = None):
        if sae_name not in self.fingerprints:
            raise ConfigError(
                f"{self.path}: no features of SAE '{sae_name}'; it has {sorted(self.fingerprints)}"
            )
        if expected_fingerprint and self.fingerprints[sae_name] != expected_fingerprint:
            raise ConfigError(
                f"{self.path}: features of '{sae_name}' come from another SAE "
                f"({self.fingerprints[sae_name]}) than the one on disk now "
                f"({expected_fingerprint}); rerun the features stage"
            )
        with h5py.File(self.path, "r") as h5:
            if f"{sae_name}/{pooling}" not in h5:
                raise ConfigError(f"{self.path}: no '{pooling}' pooling of '{sae_name}'")
            g = h5[f"{sae_name}/{pooling}"]
            return sp.csr_matrix(
                (g["data"][:], g["indices"][:], g["indptr"][:]), shape=tuple(g.attrs["shape"])
            )
