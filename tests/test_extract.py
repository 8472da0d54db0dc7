import numpy as np
import polars as pl
import pytest
import torch

from saeprobe.config import ExtractConfig
from saeprobe.extract import extract_dataset, forward_layers, length_batches
from saeprobe.store import TokenStore, decode_tokens, encode_tokens, read_pooled

TEXTS = ["The cat sat on the mat.", "Hi", "A much longer sentence " * 6, "Dogs bark loudly."]
IDS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def extracted(minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "acts"
    cfg = ExtractConfig(
        layers=[2, 6],
        pooling=["mean", "max", "last", "first"],
        batch_tokens=64,
        max_batch_size=2,
        token_dtype="float32",
    )
    stats = extract_dataset(minilm, TEXTS, IDS, cfg, out, progress=False)
    return out, stats


def test_hooks_equal_output_hidden_states_on_every_layer(minilm):
    enc = minilm.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = minilm.model(**enc, output_hidden_states=True).hidden_states
    for layer in range(minilm.n_layers + 1):
        got = forward_layers(minilm, enc["input_ids"], enc["attention_mask"].bool(), [layer])
        torch.testing.assert_close(got[layer], reference[layer])


def test_token_store_round_trip_excludes_special_tokens(minilm, extracted):
    out, stats = extracted
    with TokenStore(out / "tokens.h5") as store:
        assert sorted(store.doc_ids) == sorted(IDS)
        assert store.layers == [2, 6]
        for doc_id, text in zip(IDS, TEXTS, strict=True):
            enc = minilm.tokenizer(text, return_tensors="pt")
            with torch.no_grad():
                ref = minilm.model(**enc, output_hidden_states=True).hidden_states[6][0, 1:-1]
            np.testing.assert_allclose(store.doc(doc_id, 6), ref.numpy(), atol=1e-5)
            rows = store.doc_rows(doc_id)
            assert store.token_ids(rows).tolist() == enc["input_ids"][0, 1:-1].tolist()
            spans = store.file["char_spans"][rows]
            first = text[spans[0, 0] : spans[0, 1]].lower()
            assert minilm.tokenizer.convert_ids_to_tokens(int(store.token_ids(rows)[0])) == first
        assert store.n_tokens == stats["content_tokens"]


def test_pooled_parquet_matches_token_store(extracted):
    out, _ = extracted
    with TokenStore(out / "tokens.h5") as store:
        for pooling, reduce in (("mean", np.mean), ("max", np.max)):
            ids, x = read_pooled(out / "pooled.parquet", 2, pooling)
            for doc_id, row in zip(ids, x, strict=True):
                np.testing.assert_allclose(row, reduce(store.doc(doc_id, 2), axis=0), atol=1e-5)
        ids, x = read_pooled(out / "pooled.parquet", 2, "last")
        for doc_id, row in zip(ids, x, strict=True):
            np.testing.assert_allclose(row, store.doc(doc_id, 2)[-1], atol=1e-6)
    assert pl.read_parquet(out / "pooled.parquet").height == len(IDS)


def test_stats_count_documents_and_tokens(extracted):
    _, stats = extracted
    assert stats["docs"] == 4 and stats["tokens"] > stats["content_tokens"] > 0
    assert stats["batches"] >= 2  # max_batch_size=2 forces several batches


def test_length_batches_sort_by_length_and_respect_the_token_budget():
    lengths = [5, 50, 7, 48, 6, 49]
    batches = length_batches(lengths, batch_tokens=100, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 100
    assert batches[0] == [0, 4, 2]


def test_bfloat16_storage_keeps_bf16_values_exactly():
    x = (torch.randn(5, 8) * 1e5).to(torch.bfloat16)
    stored = encode_tokens(x, "bfloat16")
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(decode_tokens(stored, "bfloat16"), x.float().numpy())


def test_interrupted_extraction_leaves_no_output(minilm, tmp_path, monkeypatch):
    import saeprobe.extract as extract

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract, "pool", explode)
    with pytest.raises(KeyboardInterrupt):
        extract_dataset(
            minilm, TEXTS, IDS, ExtractConfig(layers=[1]), tmp_path / "out", progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_reading_a_layer_that_was_not_extracted_names_the_extracted_ones(extracted):
    from saeprobe.errors import ConfigError

    out, _ = extracted
    with TokenStore(out / "tokens.h5") as store, pytest.raises(ConfigError, match=r"\[2, 6\]"):
        store.read(4, slice(0, 1))
