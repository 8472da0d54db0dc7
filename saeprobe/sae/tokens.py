"""Token activations for SAE training and evaluation, streamed from the HDF5 store."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from saeprobe.errors import ConfigError
from saeprobe.store import TokenStore


def doc_chunks(store: TokenStore, docs: np.ndarray, docs_per_chunk: int) -> list[np.ndarray]:
    return [docs[i : i + docs_per_chunk] for i in range(0, len(docs), docs_per_chunk)]


def read_docs(store: TokenStore, layer: int, docs: np.ndarray) -> np.ndarray:
    """Token rows of the given documents (indices into store.doc_ids), concatenated."""
    parts = [
        store.read(layer, slice(int(store.offsets[i]), int(store.offsets[i + 1]))) for i in docs
    ]
    x = np.concatenate(parts) if parts else np.zeros((0, store.d_model), np.float32)
    if not np.isfinite(x).all():
        raise ConfigError(f"{store.path}: layer {layer} holds NaN or infinite activations")
    return x


def shuffled_batches(
    store: TokenStore,
    layer: int,
    docs: np.ndarray,
    batch_size: int,
    buffer_tokens: int,
    seed: int,
) -> Iterator[torch.Tensor]:
    """Endless (epoch after epoch) batches of token activations, shuffled through a buffer:
    memory holds at most about `buffer_tokens` rows whatever the store's size."""
    if len(docs) == 0:
        raise ConfigError(f"{store.path}: no documents to train on")
    n_rows = int((store.offsets[docs + 1] - store.offsets[docs]).sum())
    if n_rows < batch_size:
        raise ConfigError(
            f"{store.path}: the documents hold {n_rows} tokens, fewer than one batch of "
            f"{batch_size}; lower the batch size ('sae.batch_size' or 'finetune.batch_size')"
        )
    rng = np.random.default_rng(seed)
    mean_len = max(1, store.n_tokens // max(1, len(store.doc_ids)))
    docs_per_read = max(1, buffer_tokens // (4 * mean_len))
    while True:
        order = rng.permutation(docs)
        buffer = np.zeros((0, store.d_model), np.float32)
        for chunk in doc_chunks(store, order, docs_per_read):
            buffer = np.concatenate([buffer, read_docs(store, layer, np.sort(chunk))])
            if len(buffer) < buffer_tokens:
                continue
            rng.shuffle(buffer)
            # Hand out half the buffer; the rest mixes with the next reads.
            n_out = (len(buffer) // 2) // batch_size * batch_size
            for i in range(0, n_out, batch_size):
                yield torch.from_numpy(buffer[i : i + batch_size])
            buffer = buffer[n_out:]
        rng.shuffle(buffer)
        for i in range(0, len(buffer) - batch_size + 1, batch_size):
            yield torch.from_numpy(buffer[i : i + batch_size])


def sample_rows(store: TokenStore, layer: int, docs: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(docs)[: max(1, n // 8)])
    x = read_docs(store, layer, chosen)
    return x[rng.permutation(len(x))[:n]]
