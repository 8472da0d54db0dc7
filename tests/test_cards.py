import numpy as np
import polars as pl
import pytest
import torch

from saeprobe.sae import SAEConfig, build_sae
from saeprobe.sae.cards import feature_cards
from saeprobe.store import TokenStore, TokenStoreWriter

WORDS = ["red", "cat", "dog", "odd"]  # word i is token id 100 + i and fires latent i
# Each document: its text and the activation of each of its words.
# Stored in this order, two documents per chunk.
DOCS = {
    "c": ("cat dog", [2.5, 0.5]),
    "x": ("red odd red", [50.0, 50.0, 50.0]),  # in the store, but not passed in `texts`
    "a": ("red cat red dog", [2.0, 1.0, 5.0, 3.0]),
    "b": ("red red red", [4.0, 1.5, 6.0]),
}
TEXTS = {doc_id: DOCS[doc_id][0] for doc_id in ("a", "b", "c")}


@pytest.fixture
def store(tmp_path):
    """Word w of a document is a token whose activation is one-hot on dimension WORDS.index(w)."""
    writer = TokenStoreWriter(tmp_path / "tokens.h5", [1], 4, "float32", {"max_length": 32})
    for doc_id, (text, values) in DOCS.items():
        words = text.split()
        starts = [text.index(w, sum(len(v) + 1 for v in words[:i])) for i, w in enumerate(words)]
        x = torch.zeros(len(words), 4)
        for i, (w, v) in enumerate(zip(words, values, strict=True)):
            x[i, WORDS.index(w)] = v
        writer.append(
            [doc_id],
            [len(words)],
            np.asarray([100 + WORDS.index(w) for w in words], np.int32),
            np.arange(1, len(words) + 1, dtype=np.int32),
            np.asarray([(s, s + len(w)) for s, w in zip(starts, words, strict=True)], np.int32),
            {1: x},
        )
    writer.close()
    with TokenStore(tmp_path / "tokens.h5") as s:
        yield s


def identity_topk_sae():
    sae = build_sae(SAEConfig(d_in=4, d_sae=4, k=1))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def cards(store, **kwargs):
    # Two documents per chunk: rows of the second chunk must still map to the right tokens.
    return feature_cards(identity_topk_sae(), store, 1, TEXTS, docs_per_chunk=2, **kwargs)


def test_cards_keep_the_top_activations_per_latent_in_order(store):
    df = cards(store, top=2)
    by_latent = {
        latent: part.sort("rank")["activation"].to_list()
        for (latent,), part in df.group_by(["latent"])
    }
    assert by_latent == {0: [6.0, 5.0], 1: [2.5, 1.0], 2: [3.0, 0.5]}
    top_red = df.filter((pl.col("latent") == 0) & (pl.col("rank") == 0)).row(0, named=True)
    assert (top_red["doc_id"], top_red["token"], top_red["token_id"]) == ("b", "red", 100)


def test_cards_show_the_token_wrapped_in_guillemets_within_its_context(store):
    df = cards(store, top=8, context_chars=4).filter(pl.col("latent") == 0).sort("rank")
    assert df["context"].to_list() == [
        "red «red»",  # b, third word
        "cat «red» dog",  # a, third word
        "«red» red",  # b, first word
        "«red» cat",  # a, first word
        "red «red» red",  # b, second word
    ]
    assert df["activation"].to_list() == [6.0, 5.0, 4.0, 2.0, 1.5]


def test_documents_outside_texts_never_appear_nor_count(store):
    df = cards(store, top=8)
    assert set(df["doc_id"]) == {"a", "b", "c"}
    assert 3 not in set(df["latent"])  # "odd" occurs only in the excluded document
    assert df["activation"].max() < 50.0


def test_frequency_is_the_share_of_wanted_tokens_on_which_the_latent_fired(store):
    df = cards(store, top=1)
    frequency = dict(zip(df["latent"].to_list(), df["frequency"].to_list(), strict=True))
    n_tokens = 4 + 3 + 2  # documents a, b and c
    assert frequency == pytest.approx({0: 5 / n_tokens, 1: 2 / n_tokens, 2: 2 / n_tokens})
