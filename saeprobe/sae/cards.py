"""Feature cards: the token spans that activate each latent most, with their context."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from saeprobe.sae.base import SparseAutoencoder
from saeprobe.store import TokenStore


@torch.no_grad()
def feature_cards(
    sae: SparseAutoencoder,
    store: TokenStore,
    layer: int,
    texts: dict[str, str],
    top: int = 8,
    context_chars: int = 60,
    docs_per_chunk: int = 256,
) -> pl.DataFrame:
    """One row per (latent, rank): activation, document, token and its text in context,
    over the documents in `texts` (id -> text) only."""
    parts = []
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    n_tokens = 0
    row0 = 0
    for doc_ids, offsets, x in store.iter_docs(layer, docs_per_chunk):
        doc_of_row = np.repeat(np.arange(len(doc_ids)), np.diff(offsets))
        wanted = torch.from_numpy(np.asarray([d in texts for d in doc_ids])[doc_of_row])
        z = sae.encode(torch.from_numpy(x)) * wanted.unsqueeze(1)
        fires += (z > 0).sum(0)
        n_tokens += int(wanted.sum())
        rows, latents = z.nonzero(as_tuple=True)
        parts.append(
            pl.DataFrame(
                {
                    "latent": latents.numpy().astype(np.int32),
                    "activation": z[rows, latents].numpy().astype(np.float32),
                    "token_row": (rows.numpy() + row0).astype(np.int64),
                    "doc_id": np.asarray(doc_ids, dtype=object)[doc_of_row[rows.numpy()]].astype(
                        str
                    ),
                }
            )
        )
        row0 += len(x)
    if not parts:
        return pl.DataFrame()
    hits = (
        pl.concat(parts)
        .sort(["latent", "activation"], descending=[False, True])
        .group_by("latent", maintain_order=True)
        .head(top)
        .with_columns(pl.int_range(pl.len()).over("latent").alias("rank"))
    )
    rows = hits["token_row"].to_numpy()
    spans = store.file["char_spans"][np.sort(np.unique(rows))]
    span_of = dict(zip(np.sort(np.unique(rows)).tolist(), spans.tolist(), strict=True))
    token_ids = store.file["token_ids"][np.sort(np.unique(rows))]
    id_of = dict(zip(np.sort(np.unique(rows)).tolist(), token_ids.tolist(), strict=True))
    tokens, contexts = [], []
    for doc_id, row in zip(hits["doc_id"].to_list(), rows.tolist(), strict=True):
        start, end = span_of[row]
        text = texts.get(doc_id, "")
        if start < 0 or not text:
            tokens.append("")
            contexts.append("")
            continue
        left = text[max(0, start - context_chars) : start]
        right = text[end : end + context_chars]
        tokens.append(text[start:end])
        contexts.append(f"{left}«{text[start:end]}»{right}".replace("\n", " "))
    freq = (fires.float() / max(n_tokens, 1)).numpy()
    return hits.with_columns(
        pl.Series("token_id", [id_of[r] for r in rows.tolist()], dtype=pl.Int64),
        pl.Series("token", tokens),
        pl.Series("context", contexts),
        pl.Series("frequency", freq[hits["latent"].to_numpy()]),
    )
