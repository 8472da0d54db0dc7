"""The SAE stages' library side: a published SAE replaces training, fine-tuning publishes
its outputs together, on a small MiniLM store."""

import json

import polars as pl
import pytest
import torch

from saeprobe.config import (
    ExtractConfig,
    FinetuneConfig,
    ModelConfig,
    SAEEvalConfig,
    SAETrainConfig,
)
from saeprobe.errors import ConfigError
from saeprobe.extract import extract_dataset
from saeprobe.features import sae_task_docs
from saeprobe.sae import SAEConfig, build_sae, load_sae, run, save_sae
from saeprobe.sae.run import LayerData, SAEOutputs, finetune_layer, pretrain_layer
from saeprobe.store import TokenStore

TEXTS = [
    f"document number {i} talks about {'cats' if i % 2 else 'the stock market'}" for i in range(24)
]
MODEL = ModelConfig(name="minilm", dtype="float32", device="cpu")
EVAL = SAEEvalConfig(ce_docs=2, card_top=2, card_context_chars=10)


@pytest.fixture(scope="module")
def layer_data(minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "acts"
    ids = [f"d{i}" for i in range(len(TEXTS))]
    extract_dataset(
        minilm, TEXTS, ids, ExtractConfig(layers=[2], max_length=16), out, progress=False
    )
    texts = pl.DataFrame({"id": ids, "text": TEXTS, "split": ["train"] * 18 + ["test"] * 6})
    with TokenStore(out / "tokens.h5") as store:
        yield LayerData(store, 2, texts)


def finetune(layer_data, pretrained, outputs, max_docs=None, batch_size=32):
    return finetune_layer(
        layer_data,
        pretrained=pretrained,
        cfg=FinetuneConfig(epochs=1, batch_size=batch_size, buffer_tokens=64, max_docs=max_docs),
        model_cfg=MODEL,
        eval_cfg=EVAL,
        seed=0,
        outputs=outputs,
        progress=False,
    )


def test_a_published_sae_is_loaded_evaluated_and_published_instead_of_trained(layer_data, tmp_path):
    published = build_sae(SAEConfig(d_in=384, d_sae=768, k=8))
    save_sae(published, tmp_path / "published")
    outputs = SAEOutputs(tmp_path / "out", tmp_path / "report.json")
    cfg = SAETrainConfig(pretrained={"2": str(tmp_path / "published")})
    metrics = pretrain_layer(
        layer_data, cfg=cfg, model_cfg=MODEL, eval_cfg=EVAL, seed=0, outputs=outputs
    )
    assert metrics["training"] == {"loaded_from": str(tmp_path / "published")}
    copy = load_sae(outputs.folder / "sae")
    torch.testing.assert_close(copy.W_enc, published.W_enc)
    assert json.loads(outputs.report.read_text())["eval"]["tokens"] > 0
    assert pl.read_parquet(outputs.folder / "cards.parquet").height > 0


def test_fine_tuning_publishes_the_sae_its_cards_and_its_report_together(layer_data, tmp_path):
    pretrained = build_sae(SAEConfig(d_in=384, d_sae=768, k=8))
    save_sae(pretrained, tmp_path / "pretrained")
    outputs = SAEOutputs(tmp_path / "tuned", tmp_path / "tuned.json")
    metrics = finetune(layer_data, tmp_path / "pretrained", outputs)
    report = json.loads(outputs.report.read_text())
    assert report["training"]["dead_latents"] == metrics["training"]["dead_latents"] > 0
    assert report["eval"]["fvu"] < report["eval_before_finetune"]["fvu"]
    assert sorted(p.name for p in outputs.folder.iterdir()) == ["cards.parquet", "sae"]
    assert report["task_docs"] == 18 == sae_task_docs(outputs.folder / "sae")  # every train text


def test_a_task_with_fewer_tokens_than_a_batch_is_fine_tuned_in_one_batch(layer_data, tmp_path):
    save_sae(build_sae(SAEConfig(d_in=384, d_sae=768, k=8)), tmp_path / "pretrained")
    outputs = SAEOutputs(tmp_path / "tuned", tmp_path / "tuned.json")
    offsets = layer_data.store.offsets
    train = layer_data.docs("train")
    n_train = int((offsets[train + 1] - offsets[train]).sum())
    metrics = finetune(layer_data, tmp_path / "pretrained", outputs, batch_size=10 * n_train)
    assert metrics["batch_size"] == n_train
    assert metrics["training"]["tokens"] == n_train  # one epoch, every token once


def test_fine_tuning_on_a_sample_reads_only_that_many_texts_and_records_it(
    layer_data, tmp_path, monkeypatch
):
    save_sae(build_sae(SAEConfig(d_in=384, d_sae=768, k=8)), tmp_path / "pretrained")
    seen = set()
    real = run.shuffled_batches

    def spy(store, layer, docs, *args):
        seen.update(docs.tolist())
        return real(store, layer, docs, *args)

    monkeypatch.setattr(run, "shuffled_batches", spy)
    outputs = SAEOutputs(tmp_path / "tuned", tmp_path / "tuned.json")
    metrics = finetune(layer_data, tmp_path / "pretrained", outputs, max_docs=5)
    train = set(layer_data.docs("train").tolist())
    assert len(seen) == 5 and seen <= train
    assert metrics["task_docs"] == 5 == sae_task_docs(outputs.folder / "sae")


def test_a_failure_before_publishing_leaves_the_previous_outputs(layer_data, tmp_path, monkeypatch):
    outputs = SAEOutputs(tmp_path / "tuned", tmp_path / "tuned.json")
    outputs.folder.mkdir()
    (outputs.folder / "old").write_text("old")
    outputs.report.write_text("{}")
    save_sae(build_sae(SAEConfig(d_in=384, d_sae=768, k=8)), tmp_path / "pretrained")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("saeprobe.sae.run.feature_cards", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        finetune(layer_data, tmp_path / "pretrained", outputs)
    assert (outputs.folder / "old").read_text() == "old" and outputs.report.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pretrained", "tuned", "tuned.json"]


def test_fine_tuning_a_non_topk_sae_is_refused_before_any_work(layer_data, tmp_path):
    save_sae(build_sae(SAEConfig(d_in=384, d_sae=768, architecture="relu")), tmp_path / "relu")
    with pytest.raises(ConfigError, match="needs a TopK SAE; this one is relu"):
        finetune(layer_data, tmp_path / "relu", SAEOutputs(tmp_path / "o", tmp_path / "o.json"))
