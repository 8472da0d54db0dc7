"""The SAE stages' work: pretrain (or load) per layer, fine-tune per data set, evaluate, cards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from transformers import AutoModelForCausalLM

from saeprobe.config import ModelConfig, SAEEvalConfig
from saeprobe.errors import ConfigError
from saeprobe.io import atomic_path, write_json
from saeprobe.models import is_causal_lm, load_model
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.sae.cards import feature_cards
from saeprobe.sae.evaluate import ce_loss_recovered, reconstruction_metrics
from saeprobe.sae.finetune import FinetuneConfig, finetune_sae, task_dead_latents
from saeprobe.sae.io import load_sae, save_sae
from saeprobe.sae.tokens import doc_chunks, read_docs, sample_rows, shuffled_batches
from saeprobe.sae.train import SAETrainConfig, new_sae, train_sae
from saeprobe.store import TokenStore


def docs_in_split(store: TokenStore, texts: pl.DataFrame, split: str) -> np.ndarray:
    """Indices (in the store) of the documents of one split."""
    wanted = set(texts.filter(pl.col("split") == split)["id"].to_list())
    return np.asarray([i for i, d in enumerate(store.doc_ids) if d in wanted], dtype=np.int64)


def one_pass(store: TokenStore, layer: int, docs: np.ndarray, batch_size: int = 4096):
    """Each token of `docs` once, in store order, in batches."""
    for chunk in doc_chunks(store, docs, 256):
        x = read_docs(store, layer, chunk)
        for i in range(0, len(x), batch_size):
            yield torch.from_numpy(x[i : i + batch_size])


def lm_loss(
    model_cfg: ModelConfig, sae: SparseAutoencoder, layer: int, texts: list[str], max_length: int
) -> dict:
    if not is_causal_lm(model_cfg):
        return {"ce_loss_recovered": None, "note": "not a causal language model"}
    lm = load_model(model_cfg, AutoModelForCausalLM)
    return ce_loss_recovered(lm, sae, layer, texts, max_length)


def evaluate(sae, store, layer, docs, texts: pl.DataFrame, model_cfg, eval_cfg, max_length):
    metrics = reconstruction_metrics(sae, one_pass(store, layer, docs))
    held_out = texts.filter(pl.col("id").is_in([store.doc_ids[i] for i in docs]))
    sample = held_out["text"].head(eval_cfg.ce_docs).to_list()
    if sample:
        metrics |= lm_loss(model_cfg, sae, layer, sample, max_length)
    return metrics


def write_cards(sae, store, layer, texts: pl.DataFrame, eval_cfg: SAEEvalConfig, path: Path):
    cards = feature_cards(
        sae,
        store,
        layer,
        dict(texts.select("id", "text").iter_rows()),
        top=eval_cfg.card_top,
        context_chars=eval_cfg.card_context_chars,
    )
    with atomic_path(path) as tmp:
        cards.write_parquet(tmp)


def save_outputs(
    sae, store, layer, texts, model_cfg, eval_cfg, out_dir: Path, report: Path, metrics: dict
) -> None:
    """The SAE, its feature cards over the held-out documents, and its metrics."""
    save_sae(sae, out_dir / "sae", extra={"layer": layer, "model": model_cfg.name})
    write_cards(
        sae,
        store,
        layer,
        texts.filter(pl.col("split") == "test"),
        eval_cfg,
        out_dir / "cards.parquet",
    )
    write_json(report, metrics)


def pretrain_layer(
    layer: int,
    store: TokenStore,
    texts: pl.DataFrame,
    cfg: SAETrainConfig,
    model_cfg: ModelConfig,
    eval_cfg: SAEEvalConfig,
    max_length: int,
    seed: int,
    out_dir: Path,
    report: Path,
    progress: bool = True,
) -> dict:
    torch.manual_seed(seed)
    store.read(layer, slice(0, 0))  # a clear error if the layer was not extracted
    train_docs = docs_in_split(store, texts, "train")
    eval_docs = docs_in_split(store, texts, "test")
    published = cfg.pretrained.get(str(layer))
    if published:
        sae = load_sae(published, d_in=store.d_model)
        training = {"loaded_from": str(published)}
    else:
        sample = sample_rows(store, layer, train_docs, 8192, seed)
        sae = new_sae(cfg, store.d_model, sample, layer, model_cfg.name)
        batches = shuffled_batches(
            store, layer, train_docs, cfg.batch_size, cfg.buffer_tokens, seed
        )
        training = train_sae(sae, batches, cfg, progress)
    metrics = {
        "training": training,
        "eval": evaluate(sae, store, layer, eval_docs, texts, model_cfg, eval_cfg, max_length),
        "width": sae.cfg.d_sae,
    }
    save_outputs(sae, store, layer, texts, model_cfg, eval_cfg, out_dir, report, metrics)
    return metrics


def finetune_layer(
    layer: int,
    pretrained: Path,
    store: TokenStore,
    texts: pl.DataFrame,
    cfg: FinetuneConfig,
    model_cfg: ModelConfig,
    eval_cfg: SAEEvalConfig,
    max_length: int,
    seed: int,
    out_dir: Path,
    report: Path,
    progress: bool = True,
) -> dict:
    torch.manual_seed(seed)
    sae = load_sae(pretrained, d_in=store.d_model)
    train_docs = docs_in_split(store, texts, "train")
    test_docs = docs_in_split(store, texts, "test")
    if len(train_docs) == 0:
        raise ConfigError(f"{store.path}: no training documents to fine-tune on")
    before = reconstruction_metrics(sae, one_pass(store, layer, test_docs))
    dead = task_dead_latents(sae, one_pass(store, layer, train_docs))
    n_train = int(store.offsets[train_docs + 1].sum() - store.offsets[train_docs].sum())
    rng = np.random.default_rng(seed)

    def epoch():
        # A fresh shuffle each epoch; one pass over the task's training tokens.
        batches = shuffled_batches(
            store, layer, train_docs, cfg.batch_size, cfg.buffer_tokens, int(rng.integers(2**31))
        )
        for _ in range(max(1, n_train // cfg.batch_size)):
            yield next(batches)

    training = finetune_sae(sae, epoch, dead, cfg, progress)
    after = evaluate(sae, store, layer, test_docs, texts, model_cfg, eval_cfg, max_length)
    metrics = {
        "training": training,
        "eval": after,
        "eval_before_finetune": before,
        "width": sae.cfg.d_sae,
    }
    save_outputs(sae, store, layer, texts, model_cfg, eval_cfg, out_dir, report, metrics)
    return metrics
