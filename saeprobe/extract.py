"""Run a model once over a data set and cache token-level and pooled activations."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from saeprobe.config import ExtractConfig
from saeprobe.errors import ConfigError
from saeprobe.io import atomic_dir, write_json
from saeprobe.models import LoadedModel, check_layers, decoder_layers
from saeprobe.pooling import pool
from saeprobe.store import PooledWriter, TokenStoreWriter, pooled_column


@dataclass
class Tokenized:
    """Documents tokenized once, without padding."""

    ids: list[list[int]]
    special: list[list[int]]
    spans: list[list[tuple[int, int]]]
    n_truncated: int


def tokenize(
    model: LoadedModel, texts: list[str], doc_ids: list[str], max_length: int
) -> Tokenized:
    tok = model.tokenizer
    enc = tok(
        texts,
        truncation=True,
        max_length=max_length,
        return_special_tokens_mask=True,
        return_offsets_mapping=tok.is_fast,
        return_overflowing_tokens=False,
    )
    ids = enc["input_ids"]
    special = enc["special_tokens_mask"]
    spans = enc["offset_mapping"] if tok.is_fast else [[(-1, -1)] * len(x) for x in ids]
    for doc_id, mask in zip(doc_ids, special, strict=True):
        if all(mask):
            raise ConfigError(f"document '{doc_id}' has no tokens besides special tokens")
    n_truncated = sum(len(x) >= max_length for x in ids)
    return Tokenized(ids, special, spans, n_truncated)


def length_batches(lengths: list[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group documents of similar length so padding stays small: sort, then fill greedily."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted ascending: the newest document is the longest
        if current and (
            (len(current) + 1) * longest > batch_tokens or len(current) >= max_batch_size
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class _StopForward(Exception):
    """Raised by a hook once the deepest wanted layer ran: the rest of the model is skipped."""


@contextlib.contextmanager
def capture_hidden_states(model: LoadedModel, layers: list[int]) -> Iterator[dict[int, Tensor]]:
    """Record hidden_states[L] for the wanted layers with hooks, as `output_hidden_states` would
    number them: 0 is the input of the first block, L the output of block L-1. The last index
    (after the final norm, where the model has one) is read from `last_hidden_state` instead."""
    blocks = decoder_layers(model.model, model.n_layers)
    captured: dict[int, Tensor] = {}
    deepest = max(layers)
    stop = deepest < model.n_layers
    handles = []

    def keep_input(layer: int):
        def hook(_module, args, kwargs):
            captured[layer] = args[0] if args else kwargs["hidden_states"]

        return hook

    def keep_output(layer: int):
        def hook(_module, _args, output):
            captured[layer] = output[0] if isinstance(output, tuple) else output
            if stop and layer == deepest:
                raise _StopForward

        return hook

    if 0 in layers:
        handles.append(blocks[0].register_forward_pre_hook(keep_input(0), with_kwargs=True))
    for layer in layers:
        if 0 < layer < model.n_layers:
            handles.append(blocks[layer - 1].register_forward_hook(keep_output(layer)))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def forward_layers(
    model: LoadedModel, input_ids: Tensor, attention_mask: Tensor, layers: list[int]
) -> dict[int, Tensor]:
    with capture_hidden_states(model, layers) as captured:
        try:
            out = model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            out = None
        if model.n_layers in layers:
            captured[model.n_layers] = out.last_hidden_state
        return {layer: captured[layer] for layer in layers}


def pad_batch(
    model: LoadedModel, tokens: Tokenized, batch: list[int]
) -> tuple[Tensor, Tensor, Tensor]:
    width = max(len(tokens.ids[i]) for i in batch)
    pad_id = model.tokenizer.pad_token_id
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.bool)
    content = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, i in enumerate(batch):
        n = len(tokens.ids[i])
        input_ids[row, :n] = torch.tensor(tokens.ids[i])
        attention[row, :n] = True
        content[row, :n] = torch.tensor(tokens.special[i]) == 0
    return input_ids, attention, content


def check_extract(
    model: LoadedModel, cfg: ExtractConfig, where: str = "extract.pooling"
) -> list[int]:
    """The layers to capture, sorted, once the settings are known to suit the model
    (`where` names the params the poolings come from)."""
    check_layers(cfg.layers, model.n_layers)
    if "first" in cfg.pooling and not model.has_cls:
        raise ConfigError(f"params: '{where}' has 'first', but this model has no CLS token")
    return sorted(set(cfg.layers))


def run_batches(
    model: LoadedModel, tokens: Tokenized, batches: list[list[int]], layers: list[int]
) -> Iterator[tuple[list[int], Tensor, Tensor, Tensor, dict[int, Tensor]]]:
    """Each batch padded and run: (documents, input ids, attention mask, content mask, the
    hidden states of `layers`)."""
    for batch in batches:
        input_ids, attention, content = pad_batch(model, tokens, batch)
        hidden = forward_layers(
            model, input_ids.to(model.device), attention.to(model.device), layers
        )
        yield batch, input_ids, attention, content, hidden


def extract_dataset(
    model: LoadedModel,
    texts: list[str],
    doc_ids: list[str],
    cfg: ExtractConfig,
    out_dir: Path,
    progress: bool = True,
) -> dict:
    """Write tokens.h5, pooled.parquet and stats.json into `out_dir`, atomically.

    stats.json holds only what the inputs determine (counts); the returned dict adds the
    timing (`seconds`, `tokens_per_s`), which belongs in a metric or a log, not an output."""
    layers = check_extract(model, cfg)
    tokens = tokenize(model, texts, doc_ids, cfg.max_length)
    batches = length_batches([len(x) for x in tokens.ids], cfg.batch_tokens, cfg.max_batch_size)
    attrs = {"model": model.name, "max_length": cfg.max_length, "dtype": str(model.dtype)}
    n_tokens = n_content = 0
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        store = TokenStoreWriter(tmp / "tokens.h5", layers, model.d_model, cfg.token_dtype, attrs)
        pooled = PooledWriter(tmp / "pooled.parquet", layers, cfg.pooling, model.d_model)
        bar = tqdm(total=len(texts), unit="doc", disable=not progress, desc=out_dir.name)
        for batch, input_ids, attention, content, hidden in run_batches(
            model, tokens, batches, layers
        ):
            content_dev = content.to(model.device)
            vectors = {}
            acts = {}
            for layer, h in hidden.items():
                for method, v in pool(h, content_dev, cfg.pooling).items():
                    vectors[pooled_column(layer, method)] = v.cpu().numpy()
                acts[layer] = h[content_dev]
            rows, cols = content.nonzero(as_tuple=True)
            pairs = zip(rows.tolist(), cols.tolist(), strict=True)
            spans = np.asarray([tokens.spans[batch[r]][c] for r, c in pairs], dtype=np.int32)
            store.append(
                doc_ids=[doc_ids[i] for i in batch],
                lengths=content.sum(1).tolist(),
                token_ids=input_ids[content].numpy().astype(np.int32),
                positions=cols.numpy().astype(np.int32),
                char_spans=spans.reshape(-1, 2),
                acts=acts,
            )
            pooled.append([doc_ids[i] for i in batch], vectors)
            n_tokens += int(attention.sum())
            n_content += int(content.sum())
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{n_tokens / (time.perf_counter() - start):,.0f}")
        bar.close()
        store.close()
        pooled.close()
        seconds = time.perf_counter() - start
        stats = {
            "docs": len(texts),
            "tokens": n_tokens,
            "content_tokens": n_content,
            "truncated_docs": tokens.n_truncated,
            "batches": len(batches),
            "layers": layers,
            "model": model.name,
        }
        write_json(tmp / "stats.json", stats)
    timing = {"seconds": round(seconds, 3), "tokens_per_s": round(n_tokens / seconds, 1)}
    return stats | timing


def pooled_states(
    model: LoadedModel,
    texts: list[str],
    doc_ids: list[str],
    cfg: ExtractConfig,
    progress: bool = True,
    where: str = "extract.pooling",
) -> dict[str, np.ndarray]:
    """The pooled vectors of extract_dataset's pooled.parquet, in memory and in `texts`
    order (column L<layer>_<pooling> -> (n_docs, d) float32), with no token store: for a
    stage that reads pooled vectors alone."""
    layers = check_extract(model, cfg, where)
    tokens = tokenize(model, texts, doc_ids, cfg.max_length)
    batches = length_batches([len(x) for x in tokens.ids], cfg.batch_tokens, cfg.max_batch_size)
    columns = [pooled_column(layer, p) for layer in layers for p in cfg.pooling]
    out = {c: np.zeros((len(texts), model.d_model), dtype=np.float32) for c in columns}
    bar = tqdm(total=len(texts), unit="doc", disable=not progress, desc="hidden states")
    for batch, _, _, content, hidden in run_batches(model, tokens, batches, layers):
        for layer, h in hidden.items():
            for method, v in pool(h, content.to(model.device), cfg.pooling).items():
                out[pooled_column(layer, method)][batch] = v.float().cpu().numpy()
        bar.update(len(batch))
    bar.close()
    return out
