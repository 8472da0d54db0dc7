"""Multi-token probes: the attention probe finds the one token that decides a label, which
mean pooling cannot; the concatenation baseline; rows on the probe stage's samples."""

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saeprobe.config import AttentionProbeConfig, MultiTokenConfig, ProbeConfig, RegimeConfig
from saeprobe.probes.attention import fit_attention_probe, pad
from saeprobe.probes.multitoken import concat_pca_features, multitoken_fits
from saeprobe.probes.schema import RESULT_SCHEMA
from saeprobe.regimes import sample


def one_token_decides(n: int, seed: int, d: int = 8):
    """Each document has a marker token (dimension 1 high) whose dimension 0 is the label's
    sign, and a distractor with the opposite sign: every token-averaged feature has the
    same distribution in both classes, so mean pooling sees nothing."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    docs = []
    for label in y:
        length = rng.integers(6, 12)
        doc = rng.normal(scale=0.3, size=(length, d)).astype(np.float32)
        doc[:, 1] = 0.0
        marker, distractor = rng.choice(length, size=2, replace=False)
        sign = 1.0 if label else -1.0
        doc[marker, 0], doc[marker, 1] = sign, 3.0
        doc[distractor, 0] = -sign
        docs.append(doc)
    return docs, y


def test_the_attention_probe_learns_a_label_that_one_token_decides_and_mean_pooling_misses():
    docs, y = one_token_decides(400, 0)
    test_docs, y_test = one_token_decides(200, 1)
    cfg = AttentionProbeConfig(lr=0.05, steps=300)
    fitted = fit_attention_probe(docs, y, 2, cfg, seed=0)
    attention_auc = roc_auc_score(y_test, fitted.predict_proba(test_docs)[:, 1])

    mean = LogisticRegression(max_iter=1000).fit(np.stack([d.mean(0) for d in docs]), y)
    mean_auc = roc_auc_score(
        y_test, mean.predict_proba(np.stack([d.mean(0) for d in test_docs]))[:, 1]
    )
    assert attention_auc > 0.95
    assert mean_auc < 0.65


def test_the_attention_probe_ignores_padding():
    docs, y = one_token_decides(40, 0)
    fitted = fit_attention_probe(docs, y, 2, AttentionProbeConfig(steps=5), seed=0)
    alone = fitted.predict_proba(docs[:1])
    with_longer = fitted.predict_proba([docs[0], np.ones((30, docs[0].shape[1]), np.float32)])
    np.testing.assert_allclose(alone[0], with_longer[0], rtol=1e-5)
    x, mask = pad(docs[:2])
    assert mask.sum(1).tolist() == [len(docs[0]), len(docs[1])]


def test_the_attention_probe_is_seeded_and_handles_several_classes():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    docs = [rng.normal(size=(5, 4)).astype(np.float32) + c for c in y]
    cfg = AttentionProbeConfig(lr=0.01, steps=50)
    a = fit_attention_probe(docs, y, 3, cfg, seed=3).predict_proba(docs)
    b = fit_attention_probe(docs, y, 3, cfg, seed=3).predict_proba(docs)
    assert a.shape == (60, 3) and np.array_equal(a, b)
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-6)


def test_the_concatenation_baseline_fits_one_pca_per_position_on_training_rows_only():
    rng = np.random.default_rng(0)
    docs = [rng.normal(size=(n, 6)).astype(np.float32) for n in (3, 5, 2, 5)]
    train = np.array([0, 1, 2])
    X = concat_pca_features(docs, train, components=2, positions=None)
    # positions 0-2 and 4 are reached by a training document (doc 1, length 5): 4 + 1 = 5 PCAs
    assert X.shape == (4, 5 * 2)
    capped = concat_pca_features(docs, train, components=2, positions=2)
    assert capped.shape == (4, 4) and np.allclose(capped, X[:, :4])


def test_multitoken_rows_train_on_the_probe_stage_sample_and_score_test_and_shift():
    docs, y = one_token_decides(90, 0)
    split = ["train"] * 60 + ["test"] * 20 + ["ood"] * 10
    prepared = pl.DataFrame({"label": y, "split": split})
    cfg = MultiTokenConfig(attention=AttentionProbeConfig(lr=0.05, steps=30))
    normal = RegimeConfig(seeds=2, max_train=40)
    results = multitoken_fits("toy", prepared, {6: docs}, cfg, ProbeConfig(n_jobs=1), normal, 5)
    assert results.schema == pl.Schema(RESULT_SCHEMA)
    assert results.height == 2 * 2 * 2  # seeds x methods x (normal, shift)
    assert set(results["regime"]) == {"normal", "shift"}
    assert set(results["method"]) == {"attention", "concat_pca"}
    normal = results.filter(pl.col("regime") == "normal")
    assert (normal["n_test"] == 20).all()
    pools = {"train": np.arange(60), "test": np.arange(60, 80), "ood": np.arange(80, 90)}
    drawn = sample("normal", None, RegimeConfig(max_train=40), y, **{
        "train_pool": pools["train"], "test_pool": pools["test"], "ood_pool": pools["ood"]
    }, seed=5)  # fmt: skip
    assert (results.filter(pl.col("seed") == 5)["n_train"] == len(drawn.train)).all()


def test_a_concatenation_with_no_usable_position_is_skipped_not_failed():
    from saeprobe.errors import Infeasible

    docs = [np.zeros((2, 3), np.float32)] * 4
    with pytest.raises(Infeasible, match="no token position"):
        concat_pca_features(docs, np.array([0, 1]), components=2, positions=None)


def test_multitoken_params_mistakes_are_named():
    import dataclasses

    from saeprobe import config
    from saeprobe.errors import ConfigError

    raw = dataclasses.asdict(MultiTokenConfig())
    with pytest.raises(ConfigError, match="'multitoken.methods' has 'attn'"):
        config.multitoken_config({"multitoken": raw | {"methods": ["attn"]}})
    with pytest.raises(ConfigError, match="'multitoken.attention' needs lr > 0"):
        bad = raw | {"attention": raw["attention"] | {"lr": 0.0}}
        config.multitoken_config({"multitoken": bad})
