"""Cross-data-set transfer: the target split, label alignment, fits scored on both data
sets, and the summary's drop and intervals."""

import dataclasses

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from saeprobe import config
from saeprobe.config import ProbeConfig, TransferConfig, TransferPairConfig
from saeprobe.errors import ConfigError
from saeprobe.probes.schema import RESULT_SCHEMA
from saeprobe.probes.sweep import Representation
from saeprobe.transfer.fit import PairedRepresentation, methods_for, run_transfer
from saeprobe.transfer.split import source_name, target_name, transfer_target
from saeprobe.transfer.summary import interval, summarize_transfer


def table(texts, names, splits=None, classes=None, domains=None):
    classes = classes or sorted(set(names))
    return pl.DataFrame(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "label": [classes.index(n) for n in names],
            "label_name": names,
            "split": splits or ["train"] * len(texts),
            "domain": domains or ["en"] * len(texts),
        }
    )


def test_the_target_keeps_no_text_of_the_source_and_no_shifted_rows():
    source = table(["Good film.", "Bad film.", "Fine."], ["pos", "neg", "pos"])
    target = table(
        ["good  FILM.", "Awful.", "Great!", "Dull.", "Lovely."],
        ["pos", "neg", "pos", "neg", "pos"],
        ["train", "test", "test", "train", "ood"],
    )
    found = transfer_target(source, target, TransferPairConfig("a", "b"), "transfer.pairs.p")
    kept = set(target["text"][found.rows].to_list())
    assert kept == {"Awful.", "Great!", "Dull."}  # "good  FILM." is a source text; "Lovely." OOD
    assert found.overlap_dropped == 1


def test_a_cross_lingual_target_is_the_shifted_split_or_one_domain():
    both = table(
        ["Good.", "Bad.", "Bon.", "Mauvais.", "Gut.", "Schlecht.", "Toll."],
        ["pos", "neg", "pos", "neg", "pos", "neg", "pos"],
        ["train", "test", "ood", "ood", "train", "test", "test"],
        domains=["en", "en", "fr", "fr", "de", "de", "de"],
    )
    ood = TransferPairConfig("a", "a", test_split="ood")
    found = transfer_target(both, both, ood, "p")
    assert both["text"][found.rows].to_list() == ["Bon.", "Mauvais."]
    assert target_name(ood) == "a:ood"
    german = TransferPairConfig("a", "a", train_domain="en", test_domain="de")
    found = transfer_target(both, both, german, "p")
    # the German test split only: the source's fine-tuned SAE read German training texts
    assert both["text"][found.rows].to_list() == ["Schlecht.", "Toll."]
    assert (source_name(german), target_name(german)) == ("a:en", "a:de")


def test_a_target_text_that_contains_a_long_source_text_is_left_out():
    phrase = "a gorgeous , witty , seductive movie about love"
    source = table([phrase, "Dull."], ["pos", "neg"])
    target = table(
        [f"{phrase.upper()} and loss .", "gorgeous", "A bore.", "Great."],
        ["pos", "pos", "neg", "pos"],
    )
    found = transfer_target(source, target, TransferPairConfig("a", "b"), "p")
    # short texts are compared whole only: "gorgeous" is not a copy of the long phrase
    assert target["text"][found.rows].to_list() == ["gorgeous", "A bore.", "Great."]
    assert found.overlap_dropped == 1


def test_labels_are_aligned_by_name_not_by_index():
    source = table(["a", "b", "c", "d"], ["neg", "pos", "neg", "pos"], classes=["neg", "pos"])
    # The target numbers its classes the other way round.
    target = table(["w", "x", "y", "z"], ["pos", "neg", "pos", "neg"], classes=["pos", "neg"])
    found = transfer_target(source, target, TransferPairConfig("a", "b"), "transfer.pairs.p")
    names = target["label_name"][found.rows].to_list()
    assert found.labels.tolist() == [1 if n == "pos" else 0 for n in names]


def test_a_label_map_merges_and_drops_target_classes():
    source = table(["a", "b"], ["0", "1"])
    target = table([f"t{i}" for i in range(5)], ["0", "1", "2", "3", "4"])
    pair = TransferPairConfig("a", "b", {"0": "0", "1": "0", "3": "1", "4": "1"})
    found = transfer_target(source, target, pair, "transfer.pairs.p")
    assert target["label_name"][found.rows].to_list() == ["0", "1", "3", "4"]
    assert found.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"5": "1", "0": "0"}, r"'transfer.pairs.p.labels' maps \['5'\], which are not labels"),
        ({"0": "zero", "1": "1"}, r"maps to \['zero'\], which are not labels of data set 'a'"),
        ({}, r"data set 'b' has \['2'\].*transfer.pairs.p.labels"),
        ({"0": "1", "1": "1"}, "keeps 2 row.*of 1 class.*in its in_distribution rows"),
    ],
)
def test_a_label_mismatch_names_the_parameter(labels, message):
    source = table(["a", "b"], ["0", "1"])
    target = (
        table(["x", "y", "z"], ["0", "1", "2"]) if not labels else table(["x", "y"], ["0", "1"])
    )
    if labels and "5" in labels:
        target = table(["x", "y"], ["0", "1"])
    with pytest.raises(ConfigError, match=message):
        transfer_target(source, target, TransferPairConfig("a", "b", labels), "transfer.pairs.p")


def blobs(n, shift, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 6))
    X[:, 0] += 2.0 * y
    X[:, 1] += shift  # a shift of the target's domain that the label does not depend on
    return X, y


def test_every_fit_is_scored_in_distribution_and_on_the_target():
    X, y = blobs(120, 0.0, 0)
    X_target, y_target = blobs(60, 1.5, 1)
    names = ["neg", "pos"]
    source = table([f"s{i}" for i in range(120)], [names[c] for c in y])
    source = source.with_columns(
        pl.Series("split", ["test" if i % 5 == 0 else "train" for i in range(120)])
    )
    target_table = table([f"t{i}" for i in range(60)], [names[c] for c in y_target])
    pair = TransferPairConfig("src", "dst")
    target = transfer_target(source, target_table, pair, "transfer.pairs.p")
    reps = [PairedRepresentation(Representation(3, "hidden", X, "last"), X_target)]
    cfg = TransferConfig(seeds=3, max_train=40, methods=["logreg_l2"])
    results = run_transfer(pair, source, target, reps, cfg, ProbeConfig(n_jobs=1), base_seed=7)

    assert results.schema == pl.Schema(RESULT_SCHEMA)
    assert results.height == 3 * 2  # seeds x (in-distribution, transfer)
    assert set(results["seed"]) == {7, 8, 9}
    moved = results.filter(pl.col("test_dataset") == "dst")
    assert (moved["train_dataset"] == "src").all() and (moved["n_test"] == 60).all()
    assert (results["regime"] == "transfer").all() and (results["roc_auc"] > 0.8).all()

    (summary,) = summarize_transfer(results, pair)
    in_auc = results.filter(pl.col("test_dataset") == "src").sort("seed")["roc_auc"].to_numpy()
    out_auc = moved.sort("seed")["roc_auc"].to_numpy()
    assert summary["drop"]["mean"] == pytest.approx(np.mean(in_auc - out_auc))
    assert summary["seeds"] == 3 and summary["family"] == "hidden"
    for key in ("in_distribution", "transfer", "drop"):
        ci = summary[key]
        assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]


def test_seeds_draw_different_training_samples():
    X, y = blobs(200, 0.0, 0)
    source = table([f"s{i}" for i in range(200)], [["n", "p"][c] for c in y]).with_columns(
        pl.Series("split", ["test" if i % 5 == 0 else "train" for i in range(200)])
    )
    target_table = table(["a", "b", "c", "d"], ["n", "p", "n", "p"])
    pair = TransferPairConfig("s", "t")
    target = transfer_target(source, target_table, pair, "p")
    reps = [PairedRepresentation(Representation(1, "hidden", X, "last"), X[:4])]
    cfg = TransferConfig(seeds=2, max_train=20, methods=["logreg_l2"])
    results = run_transfer(pair, source, target, reps, cfg, ProbeConfig(n_jobs=1), base_seed=0)
    scored = results.filter(pl.col("test_dataset") == "s").sort("seed")["roc_auc"].to_list()
    assert scored[0] != scored[1]


def test_a_fit_the_representation_cannot_support_is_recorded_as_skipped():
    X, y = blobs(60, 0.0, 0)
    source = table([f"s{i}" for i in range(60)], [["n", "p"][c] for c in y]).with_columns(
        pl.Series("split", ["test" if i % 5 == 0 else "train" for i in range(60)])
    )
    target_table = table(["a", "b", "c", "d"], ["n", "p", "n", "p"])
    pair = TransferPairConfig("s", "t")
    target = transfer_target(source, target_table, pair, "p")
    codes = sp.csr_matrix(np.abs(X[:, :3]))  # 3 latents: a top-16 probe cannot be built
    reps = [PairedRepresentation(Representation(1, "sae_pretrained", codes, "last"), codes[:4])]
    cfg = TransferConfig(seeds=2, max_train=20, sae_k=[2, 16], methods=["sae_topk"])
    results = run_transfer(pair, source, target, reps, cfg, ProbeConfig(n_jobs=1), base_seed=0)
    by_status = dict(results.group_by("method").agg(pl.col("status").unique()).iter_rows())
    assert by_status == {"sae_top2": ["ok"], "sae_top16": ["skipped"]}
    (summary,) = summarize_transfer(results, pair)  # only the fitted setting
    assert summary["method"] == "sae_top2"


def test_each_representation_gets_the_methods_that_read_it():
    cfg = TransferConfig(sae_k=[4, 8])
    sae = Representation(6, "sae_pretrained", sp.csr_matrix((2, 3)), "last")
    mosaic = Representation(6, "sae_pretrained", sp.csr_matrix((2, 3)), "top20>0", mosaic=True)
    text = Representation(-1, "text", np.asarray(["a", "b"], dtype=object))
    hidden = Representation(6, "hidden", np.zeros((2, 3)), "last")
    assert methods_for(sae, cfg) == ["sae_top4", "sae_top8", "sae_top4_bin", "sae_top8_bin"]
    assert methods_for(mosaic, cfg) == ["mosaic_linear", "mosaic_lr_c1"]
    assert methods_for(text, cfg) == ["tfidf"]
    assert methods_for(hidden, cfg) == ["logreg_l2", "pca", "knn", "xgboost", "mlp"]


def test_an_interval_over_seeds_is_student_t():
    ci = interval(np.array([0.8, 0.9, 1.0]))
    assert ci["mean"] == pytest.approx(0.9)
    assert ci["ci_high"] - ci["mean"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)


def transfer_params(**changes) -> dict:
    return {"transfer": {**dataclasses.asdict(TransferConfig()), **changes}}


def test_transfer_params_mistakes_are_named():
    params = transfer_params(pairs={"p": {"train": "a", "test": "a"}})
    with pytest.raises(ConfigError, match="'transfer.pairs.p' trains and tests on the same rows"):
        config.transfer_config(params)
    params = transfer_params(pairs={"p": {"train": "a", "test": "a", "test_domain": "fr"}})
    with pytest.raises(ConfigError, match="two different domains"):
        config.transfer_config(params)
    params = transfer_params(pairs={"p": {"train": "a", "test": "a", "test_split": "test"}})
    with pytest.raises(ConfigError, match="'transfer.pairs.p.test_split' has 'test'"):
        config.transfer_config(params)
    config.transfer_config(
        transfer_params(pairs={"p": {"train": "a", "test": "a", "test_split": "ood"}})
    )
    params = transfer_params(pairs={"p": {"train": "a", "tset": "b"}})
    with pytest.raises(ConfigError, match="unknown key 'transfer.pairs.p.tset'"):
        config.transfer_config(params)
    params = transfer_params(pairs={"p": {"train": "a", "test": "nosuch"}})
    with pytest.raises(ConfigError, match="'transfer.pairs.p.test' is 'nosuch'"):
        config.check_transfer(params, ["a", "b"])
    with pytest.raises(ConfigError, match="'transfer.methods' has 'logreg_l3'"):
        config.transfer_config(transfer_params(methods=["logreg_l3"]))
