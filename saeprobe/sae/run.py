"""The SAE stages' work: pretrain (or load) per layer, fine-tune per data set, evaluate, cards;
the spliced-in LM loss of every SAE of a layer at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from saeprobe.config import FinetuneConfig, ModelConfig, SAEEvalConfig, SAETrainConfig
from saeprobe.errors import ConfigError
from saeprobe.io import atomic_outputs, json_text
from saeprobe.models import is_causal_lm, load_model, resolve_model_path
from saeprobe.sae.base import SparseAutoencoder
from saeprobe.sae.cards import feature_cards
from saeprobe.sae.evaluate import ce_loss_recovered, reconstruction_metrics
from saeprobe.sae.finetune import finetune_sae, token_statistics
from saeprobe.sae.io import load_sae, save_sae
from saeprobe.sae.tokens import doc_chunks, read_docs, sample_rows, shuffled_batches
from saeprobe.sae.topk import TopKSAE
from saeprobe.sae.train import new_sae, train_sae
from saeprobe.store import TokenStore


@dataclass(frozen=True)
class LayerData:
    """One layer's token activations and the texts behind them (id, text, split)."""

    store: TokenStore
    layer: int
    texts: pl.DataFrame

    def docs(self, split: str) -> np.ndarray:
        """Indices (in the store) of the documents of one split."""
        wanted = set(self.texts.filter(pl.col("split") == split)["id"].to_list())
        return np.asarray(
            [i for i, d in enumerate(self.store.doc_ids) if d in wanted], dtype=np.int64
        )

    def one_pass(self, docs: np.ndarray, batch_size: int = 4096):
        """Each token of `docs` once, in store order, in batches."""
        for chunk in doc_chunks(self.store, docs, 256):
            x = read_docs(self.store, self.layer, chunk)
            for i in range(0, len(x), batch_size):
                yield torch.from_numpy(x[i : i + batch_size])


@dataclass(frozen=True)
class SAEOutputs:
    """Where an SAE stage publishes: the folder (sae/, cards.parquet) and the metrics file."""

    folder: Path
    report: Path


def ce_texts(texts: pl.DataFrame, n: int) -> list[str]:
    """The documents of an SAE's spliced-in LM loss: the first `n` held-out (test) texts."""
    return texts.filter(pl.col("split") == "test")["text"].head(n).to_list()


def lm_losses(
    model_cfg: ModelConfig, layer: int, saes: dict[str, tuple[Path, list[str]]], max_length: int
) -> dict[str, dict]:
    """The spliced-in LM loss of each named SAE (its folder, its texts) at `layer`, the
    language model loaded once for all of them. Every SAE is loaded, so a missing or
    broken one is an error also for a model without a next-token loss."""
    from transformers import AutoModelForCausalLM

    lm = load_model(model_cfg, AutoModelForCausalLM) if is_causal_lm(model_cfg) else None
    out = {}
    for name, (folder, texts) in saes.items():
        sae = load_sae(folder, d_in=lm.d_model if lm else None)
        if lm is None:
            out[name] = {"ce_loss_recovered": None, "note": "not a causal language model"}
        else:
            out[name] = ce_loss_recovered(lm, sae, layer, texts, max_length) if texts else {}
    return out


def publish(
    sae: SparseAutoencoder,
    data: LayerData,
    *,
    model_cfg: ModelConfig,
    eval_cfg: SAEEvalConfig,
    outputs: SAEOutputs,
    metrics: dict,
    sae_meta: dict | None = None,
) -> None:
    """The SAE (a SAELens folder), its feature cards over the held-out documents and its
    metrics, together; `sae_meta` goes into the SAE's cfg.json."""
    test_texts = data.texts.filter(pl.col("split") == "test")
    cards = feature_cards(
        sae,
        data.store,
        data.layer,
        dict(test_texts.select("id", "text").iter_rows()),
        top=eval_cfg.card_top,
        context_chars=eval_cfg.card_context_chars,
    )
    with atomic_outputs(outputs.folder, outputs.report) as (folder, report):
        folder.mkdir()
        meta = {"layer": data.layer, "model": model_cfg.name, **(sae_meta or {})}
        saelens = {"context_size": data.store.max_length, "prepend_bos": True}
        n_layers = model_layers(model_cfg)
        save_sae(sae, folder / "sae", extra=meta, metadata=saelens, n_layers=n_layers)
        cards.write_parquet(folder / "cards.parquet")
        report.write_text(json_text(metrics))


def model_layers(cfg: ModelConfig) -> int:
    """The model's block count, read from its config alone."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(cfg))
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(config.num_hidden_layers)


def pretrain_layer(
    data: LayerData,
    *,
    cfg: SAETrainConfig,
    model_cfg: ModelConfig,
    eval_cfg: SAEEvalConfig,
    seed: int,
    outputs: SAEOutputs,
    progress: bool = True,
) -> dict:
    """Train an SAE on the corpus's training documents (or load the published one for this
    layer), evaluate it on the held-out documents and publish it."""
    torch.manual_seed(seed)
    data.store.read(data.layer, slice(0, 0))  # a clear error if the layer was not extracted
    train_docs, eval_docs = data.docs("train"), data.docs("test")
    published = cfg.pretrained.get(str(data.layer))
    if published:
        sae = load_sae(published, d_in=data.store.d_model)
        training = {"loaded_from": str(published)}
    else:
        sample = sample_rows(data.store, data.layer, train_docs, 8192, seed)
        sae = new_sae(cfg, data.store.d_model, sample, data.layer, model_cfg.name)
        batches = shuffled_batches(
            data.store, data.layer, train_docs, cfg.batch_size, cfg.buffer_tokens, seed
        )
        training = train_sae(sae, batches, cfg, progress)
    metrics = {
        "training": training,
        "eval": reconstruction_metrics(sae, data.one_pass(eval_docs)),
        "width": sae.cfg.d_sae,
    }
    publish(sae, data, model_cfg=model_cfg, eval_cfg=eval_cfg, outputs=outputs, metrics=metrics)
    return metrics


def finetune_layer(
    data: LayerData,
    *,
    pretrained: Path,
    cfg: FinetuneConfig,
    model_cfg: ModelConfig,
    eval_cfg: SAEEvalConfig,
    seed: int,
    outputs: SAEOutputs,
    progress: bool = True,
) -> dict:
    """Fine-tune the pretrained SAE on the task's training tokens; evaluate it on the task's
    test tokens before and after, and publish it."""
    torch.manual_seed(seed)
    sae = load_sae(pretrained, d_in=data.store.d_model)
    if not isinstance(sae, TopKSAE):
        raise ConfigError(
            f"{pretrained}: task fine-tuning follows the self-regularization paper and needs a "
            f"TopK SAE; this one is {sae.cfg.architecture}"
        )
    train_docs, test_docs = data.docs("train"), data.docs("test")
    if len(train_docs) == 0:
        raise ConfigError(f"{data.store.path}: no training documents to fine-tune on")
    train_docs = sample_docs(train_docs, cfg.max_docs, seed)
    before = token_statistics(sae, data.one_pass(test_docs))
    offsets = data.store.offsets
    n_train = int(offsets[train_docs + 1].sum() - offsets[train_docs].sum())
    # A task with fewer training tokens than a batch (short texts, few of them) is
    # fine-tuned on all of them as one batch per epoch.
    batch_size = max(1, min(cfg.batch_size, n_train))
    rng = np.random.default_rng(seed)

    def epoch():
        # A fresh shuffle each epoch; one pass over the task's training tokens.
        batches = shuffled_batches(
            data.store,
            data.layer,
            train_docs,
            batch_size,
            cfg.buffer_tokens,
            int(rng.integers(2**31)),
        )
        for _ in range(max(1, n_train // batch_size)):
            yield next(batches)

    training = finetune_sae(sae, epoch, lambda: data.one_pass(train_docs), cfg, progress)
    dead_before = training.pop("dead_before")
    after = token_statistics(sae, data.one_pass(test_docs))
    metrics = {
        "task_docs": len(train_docs),
        "batch_size": batch_size,
        "training": training,
        "dead": {
            # The paper's definition (pre-activation never > 0), on the training tokens ...
            "train_before": int(dead_before.sum()),
            "train_after": training["dead_latents_after"],
            # ... and on the test tokens; then latents never in the code on test tokens.
            "test_before": int(before.dead.sum()),
            "test_after": int(after.dead.sum()),
            "never_in_code_test_before": int((~before.in_code).sum()),
            "never_in_code_test_after": int((~after.in_code).sum()),
            # Formerly dead (on training tokens) latents that enter the code on test tokens.
            "formerly_dead_in_code_test": int((dead_before & after.in_code).sum()),
        },
        "eval": after.reconstruction,
        "eval_before_finetune": before.reconstruction,
        "width": sae.cfg.d_sae,
    }
    publish(
        sae,
        data,
        model_cfg=model_cfg,
        eval_cfg=eval_cfg,
        outputs=outputs,
        metrics=metrics,
        sae_meta={"task_docs": len(train_docs)},
    )
    return metrics


def sample_docs(docs: np.ndarray, max_docs: int | None, seed: int) -> np.ndarray:
    """`docs`, or a seeded sample of `max_docs` of them (in store order)."""
    if max_docs is None or max_docs >= len(docs):
        return docs
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(docs, size=max_docs, replace=False))
