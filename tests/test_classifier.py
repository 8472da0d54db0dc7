"""Saved classifiers (the classifier stage) and `saeprobe predict` / `explain` on them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from safetensors.numpy import save_file

from saeprobe.classifier import Classifier, ClassifierInfo, load_classifier, save_classifier
from saeprobe.config import ProbeConfig
from saeprobe.errors import ConfigError
from saeprobe.probes.choice import choose_probe, train_classifier
from saeprobe.probes.methods import FitContext, fit_top_k
from saeprobe.probes.schema import RESULT_SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def results(rows):
    """Probe results with (layer, representation, method, seed, val_auc) varying."""
    base = {key: None for key in RESULT_SCHEMA}
    base |= {"regime": "normal", "status": "ok", "pooling": "last", "pooling_comparison": False}
    full = [
        base | dict(zip(["layer", "representation", "method", "seed", "val_auc"], r, strict=True))
        for r in rows
    ]
    return pl.DataFrame(full, schema=RESULT_SCHEMA)


def test_the_kept_probe_has_the_best_mean_validation_auc_and_ties_go_to_the_smaller_k():
    table = results(
        [
            (6, "sae_pretrained", "sae_top16", 0, 0.90),
            (6, "sae_pretrained", "sae_top16", 1, 0.70),  # mean 0.80
            (12, "sae_finetuned", "sae_top128", 0, 0.85),
            (12, "sae_finetuned", "sae_top128", 1, 0.85),  # mean 0.85, tied ...
            (12, "sae_finetuned", "sae_top4", 0, 0.85),
            (12, "sae_finetuned", "sae_top4", 1, 0.85),  # ... with a smaller k
            (6, "sae_pretrained", "sae_top4_bin", 0, 0.99),  # binarized: not kept
            (6, "hidden", "logreg_l2", 0, 0.99),  # not an SAE probe
        ]
    )
    choice = choose_probe(table, "last", "spam")
    assert (choice.layer, choice.sae, choice.method) == (12, "finetuned", "sae_top4")
    assert choice.val_auc == pytest.approx(0.85)


def test_a_tie_between_the_two_saes_keeps_the_pretrained_one_whatever_the_row_order():
    rows = [
        (1, "sae_finetuned", "sae_top4", 0, 1.0),
        (1, "sae_pretrained", "sae_top4", 0, 1.0),
    ]
    for ordered in (rows, rows[::-1]):
        assert choose_probe(results(ordered), "last", "spam").sae == "pretrained"


def test_a_sweep_without_top_k_probes_names_the_setting_to_change():
    table = results([(6, "hidden", "logreg_l2", 0, 0.9)])
    with pytest.raises(ConfigError, match="add sae_topk to probe.sae_methods"):
        choose_probe(table, "last", "spam")


def codes_and_labels(n=240, d=64, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    X = np.abs(rng.normal(size=(n, d))) * (rng.random((n, d)) < 0.2)
    for c in range(n_classes):
        X[labels == c, 3 + c] += 2.0  # latent 3 + c marks class c
    split = np.where(np.arange(n) < n * 2 // 3, "train", "test")
    return sp.csr_matrix(X), labels, split


def info(**changes) -> ClassifierInfo:
    values = dict(
        dataset="spam",
        model="minilm",
        dtype="float32",
        max_length=32,
        layer=1,
        sae="pretrained",
        sae_dir="data/sae/L1/pretrained/sae",
        sae_fingerprint="abc",
        pooling="last",
        method="sae_top4",
        C=1.0,
        label_names=["ham", "spam"],
        val_auc=0.9,
        test_auc=0.9,
        n_train=160,
    )
    return ClassifierInfo(**(values | changes))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_saved_classifier_predicts_what_the_fitted_probe_predicted(tmp_path, n_classes):
    codes, labels, split = codes_and_labels(n_classes=n_classes)
    choice = choose_probe(results([(1, "sae_pretrained", "sae_top4", 0, 0.9)]), "last", "spam")
    ctx = FitContext(cfg=ProbeConfig(), seed=0, n_classes=n_classes)
    latents, coef, intercept, classes, params, test_auc = train_classifier(
        choice, codes, labels, split, ctx
    )
    names = ["a", "b", "c"][:n_classes]
    path = tmp_path / "c.safetensors"
    save_classifier(path, Classifier(info(label_names=names), latents, coef, intercept, classes))
    loaded = load_classifier(path)
    reference = fit_top_k(
        4, False, codes[split == "train"], labels[split == "train"], codes[split == "test"], ctx
    )
    np.testing.assert_allclose(loaded.predict_proba(codes[split == "test"]), reference.proba)
    assert set(loaded.latents.tolist()) >= {3}  # the planted latent is kept
    assert loaded.info.label_names == names and test_auc > 0.9
    assert params["C"] == reference.params["C"]


def test_the_same_classifier_is_the_same_bytes_in_every_process(tmp_path):
    """DVC compares outputs by hash: a rerun must write an identical file."""
    script = (
        "import sys, numpy as np\n"
        "from saeprobe.classifier import Classifier, save_classifier\n"
        "from tests.test_classifier import info\n"
        "c = Classifier(info(), np.array([3, 5]), np.array([[0.5, -1.0]]), np.array([0.1]),"
        " np.array([0, 1]))\n"
        "save_classifier(sys.argv[1], c)\n"
    )
    files = [tmp_path / f"{i}.safetensors" for i in range(6)]
    for path in files:
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, cwd=ROOT)
    assert len({path.read_bytes() for path in files}) == 1


def test_a_missing_or_foreign_classifier_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; run `dvc repro`"):
        load_classifier(tmp_path / "none.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="is not a safetensors file"):
        load_classifier(garbage)
    other = tmp_path / "other.safetensors"
    save_file({"weight": np.zeros(3)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="is not a saeprobe classifier"):
        load_classifier(other)


# ---------------------------------------------------------------------------------------
# The command line on the tiny pipeline's outputs


def saeprobe(project, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "saeprobe.cli", *args],
        cwd=project,
        input=stdin,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_explain_prints_a_prediction_with_the_latents_and_spans_that_drove_it(tiny_project):
    out = saeprobe(tiny_project, "explain", "--dataset", "spam", "--top", "3", "Win a free prize!")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    label, probability, text = lines[0].split("\t")
    names = load_classifier(tiny_project / "data/classifiers/spam.safetensors").info.label_names
    assert label in names
    assert 0.5 <= float(probability) <= 1.0 and text == "Win a free prize!"
    latent_lines = [line for line in lines if line.lstrip().startswith("latent")]
    assert 1 <= len(latent_lines) <= 3 or "no latent" in out.stdout
    if latent_lines:
        assert "«" in out.stdout  # a feature card's span, the token marked in its context


@pytest.mark.slow
def test_predict_reads_stdin_and_writes_json_that_agrees_with_the_probe(tiny_project):
    texts = "Cheap meds, click here\nSee you at lunch tomorrow\n"
    out = saeprobe(tiny_project, "predict", "--dataset", "grammar", "--json", stdin=texts)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in records] == texts.splitlines()
    for record in records:
        assert sum(record["probabilities"].values()) == pytest.approx(1.0)
        assert record["probability"] == max(record["probabilities"].values())
        assert "latents" not in record
    metrics = json.loads((tiny_project / "reports/classifiers/grammar.json").read_text())
    assert metrics["method"].startswith("sae_top") and 0 <= metrics["test_auc"] <= 1


@pytest.mark.slow
def test_a_classifier_whose_sae_changed_is_refused_with_a_clear_error(tiny_project, tmp_path):
    saved = load_classifier(tiny_project / "data/classifiers/spam.safetensors")
    moved = tmp_path / "stale.safetensors"
    stale = Classifier(
        info(**(saved.info.__dict__ | {"sae_fingerprint": "0" * 16})),
        saved.latents,
        saved.coef,
        saved.intercept,
        saved.classes,
    )
    save_classifier(moved, stale)
    out = saeprobe(tiny_project, "predict", "--classifier", str(moved), "some text")
    assert out.returncode == 2
    assert "is not the one the classifier of 'spam' was trained on" in out.stderr
    assert "Traceback" not in out.stderr
    missing = saeprobe(tiny_project, "predict", "--dataset", "nosuch", "text")
    assert missing.returncode == 2 and "run `dvc repro`" in missing.stderr
    foreign = tmp_path / "foreign.safetensors"
    other = Classifier(
        info(**(saved.info.__dict__ | {"sae_dir": str(tmp_path / "nowhere")})),
        saved.latents,
        saved.coef,
        saved.intercept,
        saved.classes,
    )
    save_classifier(foreign, other)
    out = saeprobe(tiny_project, "explain", "--classifier", str(foreign), "text")
    assert out.returncode == 2 and "does not exist here" in out.stderr
