"""Self-regularization's pieces: the penalty and removal, the classifier and its baselines,
statistics, fairness metrics and the judges, each on constructed examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from saeprobe.errors import ConfigError
from saeprobe.regularization.classifier import (
    ClassifierConfig,
    classification_loss,
    train_classifier,
)
from saeprobe.regularization.fairness import (
    demographic_parity_gap,
    equalized_odds_gap,
    leakage_auc,
)
from saeprobe.regularization.judges import (
    AttributeJudgeConfig,
    ConceptJudgeConfig,
    attribute_judge,
    column_aucs,
    concept_judge,
    unintended_latents,
)
from saeprobe.regularization.penalty import (
    alignment_penalty,
    check_latents,
    remove_latents,
    weight_preacts,
)
from saeprobe.regularization.stats import paired_greater, summarize
from saeprobe.sae.base import SAEConfig
from saeprobe.sae.topk import TopKSAE


def tiny_sae(scale: float = 1.0) -> TopKSAE:
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=3, d_sae=4, k=4, input_scale=scale))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, -1]]))
        sae.W_dec.copy_(sae.W_enc.T)
        sae.b_enc.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3]))
        sae.b_dec.copy_(torch.tensor([0.5, 0.0, -0.5]))
    return sae


def test_penalty_value_and_gradient_match_a_hand_computation():
    sae = tiny_sae(scale=2.0)
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]], requires_grad=True)
    unintended = check_latents(sae, torch.tensor([1, 3]))
    # The classifier reads the SAE's units, so S = (w - b_dec) W_enc + b_enc whatever the
    # input scale; by hand for latents 1 and 3 (w - b_dec = [0.5, -2, 1] and [-0.5, 1, 1.5])
    s1 = torch.tensor([-2.0 - 0.2, 1.0 - 0.2])  # column 1 reads x_2
    s3 = torch.tensor([0.5 * 0.5 - 1.0 + 0.3, 0.5 * -0.5 - 1.5 + 0.3])  # 0.5 x_1 - x_3
    expected = torch.cat([s1, s3]).abs().mean()
    penalty = alignment_penalty(sae, w, unintended)
    assert penalty.item() == pytest.approx(expected.item(), abs=1e-6)
    penalty.backward()
    # d|S|/dw = sign(S) * W_enc[:, j], averaged over the 4 terms
    grad = torch.zeros(2, 3)
    for row in range(2):
        for j, s in ((1, s1[row]), (3, s3[row])):
            grad[row] += torch.sign(s) * sae.W_enc[:, j].detach() / 4
    assert torch.allclose(w.grad, grad, atol=1e-6)
    assert torch.allclose(weight_preacts(sae, w)[:, 1], s1, atol=1e-6)


def test_spectral_and_l2_penalties_use_the_references_forms():
    from saeprobe.regularization.classifier import LinearHead, regularizers

    torch.manual_seed(0)
    head = LinearHead(3, 2, 0.0)
    w, b = head.linear.weight.detach(), head.linear.bias.detach()
    l2 = regularizers(head, ClassifierConfig(l2=0.1)).item()
    assert l2 == pytest.approx(0.1 * (w.norm() + b.norm()).item(), rel=1e-6)
    spectral = regularizers(head, ClassifierConfig(spectral=0.5)).item()
    assert spectral == pytest.approx(0.5 * torch.linalg.svdvals(w)[0].item(), rel=1e-5)


def test_empty_unintended_set_gives_zero_penalty_and_unchanged_inputs():
    sae = tiny_sae()
    none = check_latents(sae, torch.tensor([], dtype=torch.long))
    assert alignment_penalty(sae, torch.ones(2, 3), none).item() == 0.0
    x = torch.randn(5, 3)
    assert torch.equal(remove_latents(sae, x, none), x)


def test_latents_outside_the_sae_are_refused():
    with pytest.raises(ConfigError, match=r"\[0, 4\)"):
        check_latents(tiny_sae(), torch.tensor([2, 4]))


def test_removal_subtracts_the_latents_share_of_the_reconstruction():
    sae = tiny_sae(scale=2.0)
    x = torch.randn(6, 3)
    unintended = torch.tensor([0, 3])
    pre = (x * 2.0 - sae.b_dec) @ sae.W_enc + sae.b_enc
    z = pre[:, [0, 3]].clamp_min(0)  # every positive pre-activation, not the top k
    expected = x - (z @ sae.W_dec[[0, 3]] + sae.b_dec) / 2.0
    assert torch.allclose(remove_latents(sae, x, unintended, batch_size=4), expected, atol=1e-6)


def identity_sae(d: int) -> TopKSAE:
    sae = TopKSAE(SAEConfig(d_in=d, d_sae=d, k=d))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def shortcut_problem(n: int, seed: int, agree: float):
    """Label from feature 0 (noisy), a shortcut in feature 1 that agrees with it `agree` of
    the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x0 = (2 * y - 1) * 1.0 + rng.normal(0, 0.7, n)
    cue = np.where(rng.random(n) < agree, y, 1 - y)
    x1 = (2 * cue - 1) * 3.0 + rng.normal(0, 0.1, n)
    X = np.stack([x0, x1, rng.normal(0, 1, n), rng.normal(0, 1, n)], 1).astype(np.float32)
    return X, y


def test_a_huge_lambda_zeroes_the_weights_alignment_with_unintended_latents():
    sae = identity_sae(4)
    X, y = shortcut_problem(600, 0, agree=0.95)
    X_test, y_test = shortcut_problem(600, 1, agree=0.5)  # the shortcut is useless in test
    cfg = ClassifierConfig(lr=0.01, max_epochs=60)
    unintended = torch.tensor([1])
    plain = train_classifier(X, y, 2, cfg, seed=0)
    regularized = train_classifier(
        X, y, 2, cfg, seed=0, penalty=lambda w: 1e3 * alignment_penalty(sae, w, unintended)
    )
    s_plain = weight_preacts(sae, plain.model.weight.detach())[:, 1].abs().max()
    s_reg = weight_preacts(sae, regularized.model.weight.detach())[:, 1].abs().max()
    assert s_plain > 0.3, s_plain
    assert s_reg < 0.05 * s_plain, (s_reg, s_plain)
    acc = lambda m: (m.proba(X_test).argmax(1) == y_test).mean()  # noqa: E731
    assert acc(regularized) > 0.85
    assert acc(regularized) > acc(plain) + 0.05


def test_training_keeps_the_best_validation_checkpoint_and_is_seeded():
    X, y = shortcut_problem(300, 2, agree=0.5)
    cfg = ClassifierConfig(lr=0.05, max_epochs=30)
    a = train_classifier(X, y, 2, cfg, seed=3)
    b = train_classifier(X, y, 2, cfg, seed=3)
    assert torch.equal(a.model.weight, b.model.weight)
    scores = [h["val_f1"] for h in a.history]
    assert a.best_epoch == int(np.argmax(scores))
    lrs = [h["lr"] for h in a.history]
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize(
    "option",
    [
        {"dropout": 0.3},
        {"focal_gamma": 2.0},
        {"label_smoothing": 0.1},
        {"spectral": 0.02},
        {"l2": 0.01},
        {"weight_decay": 0.1},
    ],
)
def test_every_baseline_regularizer_trains_a_working_multiclass_classifier(option):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = (np.eye(3)[y] * 2 + rng.normal(0, 0.5, (300, 3))).astype(np.float32)
    fit = train_classifier(X, y, 3, ClassifierConfig(lr=0.05, max_epochs=40, **option), seed=0)
    assert (fit.proba(X).argmax(1) == y).mean() > 0.9


def test_focal_loss_reduces_to_cross_entropy_and_matches_its_formula():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    y = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert classification_loss(logits, y, ClassifierConfig()).item() == pytest.approx(ce.item())
    p = torch.softmax(logits, 1)[[0, 1], y]
    focal = ((1 - p) ** 2 * -p.log()).mean()
    got = classification_loss(logits, y, ClassifierConfig(focal_gamma=2.0))
    assert got.item() == pytest.approx(focal.item(), rel=1e-6)


def test_summary_and_paired_test():
    s = summarize(np.array([0.8, 0.9, 1.0]))
    assert s["mean"] == pytest.approx(0.9)
    assert s["std"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2)
    assert s["ci_high"] - s["mean"] == pytest.approx(half)
    better = np.array([0.81, 0.83, 0.80, 0.84, 0.82])
    base = better - np.array([0.02, 0.03, 0.01, 0.02, 0.025])
    assert paired_greater(better, base) < 0.01
    assert paired_greater(base, better) > 0.99
    assert paired_greater(base, base) == 1.0


def test_fairness_gaps_match_hand_computed_values():
    pred = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    group = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    # P(pred=1 | a) = 2/4, | b = 1/4
    assert demographic_parity_gap(pred, group) == pytest.approx(0.25)
    # TPR a = 1/2, b = 1/2; FPR a = 1/2, b = 0/2
    assert equalized_odds_gap(pred, y, group) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="group"):
        demographic_parity_gap(pred, np.array(["a"] * 8))


def test_leakage_is_high_when_the_attribute_is_in_the_features_and_chance_when_not():
    rng = np.random.default_rng(0)
    group = rng.choice(["f", "m"], 400)
    leaky = (group == "m") + rng.normal(0, 0.3, 400)
    assert leakage_auc(leaky, group, seed=0) > 0.95
    assert abs(leakage_auc(rng.normal(size=400), group, seed=0) - 0.5) < 0.1


def test_column_aucs_match_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    X = np.where(rng.random((50, 4)) < 0.5, 0, rng.random((50, 4)))
    t = rng.integers(0, 2, 50)
    expected = [roc_auc_score(t, X[:, j]) for j in range(4)]
    assert np.allclose(column_aucs(X, t), expected)


def test_concept_judge_marks_latents_whose_spans_match_a_concept():
    cards = pl.DataFrame(
        {
            "latent": [0, 0, 0, 0, 1, 1, 1],
            "context": [
                "sent from my «iPhone» today",
                "Sent via «iPhone»",
                "an «apple», sent via iPhone",
                "Sent «vi»a the app",
                "the «goal» was scored",
                "a great «match»",
                "iPhone users are many paragraphs away from this «word»",
            ],
        }
    )
    cfg = ConceptJudgeConfig(keywords={"device": ["iphone", "sent via"]}, window_chars=10)
    table = concept_judge(cards, cfg)
    rows = {r["latent"]: r for r in table.to_dicts()}
    assert rows[0]["decision"] == "unintended"
    assert rows[0]["evidence"] == pytest.approx(3 / 4)  # "vi" lies in "Sent via"
    # A match that does not overlap the activating token (after it, or before it like
    # "iPhone users ... «word»") does not count.
    assert rows[1]["decision"] == "intended"
    assert rows[1]["evidence"] == 0.0


def test_attribute_judge_marks_latents_that_track_the_attribute_not_the_label():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    group = rng.choice(["f", "m"], n)
    X = np.zeros((n, 3))
    X[:, 0] = y * rng.random(n)  # the label
    X[:, 1] = (group == "m") * rng.random(n)  # the attribute
    X[:, 2] = rng.random(n)  # neither
    table = attribute_judge(X, y, group, AttributeJudgeConfig())
    assert table.filter(pl.col("decision") == "unintended")["latent"].to_list() == [1]
    with pytest.raises(ConfigError, match="'group'"):
        attribute_judge(X, y, np.array(["f"] * n), AttributeJudgeConfig())


def test_judges_combine_by_any_or_all():
    table = pl.DataFrame(
        {
            "latent": [0, 0, 1, 1, 2],
            "decision": ["unintended", "intended", "unintended", "unintended", "intended"],
            "judge": ["a", "b", "a", "b", "a"],
            "evidence": [1.0, 0.0, 1.0, 1.0, 0.0],
            "detail": [""] * 5,
        }
    )
    assert unintended_latents(table, "any").tolist() == [0, 1]
    assert unintended_latents(table, "all").tolist() == [1]


def prepared_task(n_per_label: int = 50) -> pl.DataFrame:
    rows = []
    for split in ("train", "test"):
        for label in (0, 1):
            for i in range(n_per_label):
                rows.append(
                    {
                        "id": f"{split}{label}{i}",
                        "text": f"text {i}",
                        "label": label,
                        "split": split,
                    }
                )
    return pl.DataFrame(rows)


def test_spurious_cue_rates_are_exact_in_training_and_half_in_test():
    from saeprobe.data.benchmarks import CUE, add_spurious_cue

    out = add_spurious_cue(prepared_task(), "[Source: wire]", rate=0.9, seed=0)
    marked = out["text"].str.ends_with("[Source: wire]")
    assert (marked == (out["group"] == CUE)).all()
    share = out.with_columns(marked.alias("m")).group_by("split", "label").agg(pl.col("m").mean())
    got = {(r["split"], r["label"]): r["m"] for r in share.to_dicts()}
    assert got == {
        ("train", 1): 0.9,
        ("train", 0): pytest.approx(0.1),
        ("test", 0): 0.5,
        ("test", 1): 0.5,
    }
    with pytest.raises(ConfigError, match="rate"):
        add_spurious_cue(prepared_task(), "x", rate=0.3, seed=0)
    multiclass = prepared_task().with_columns(pl.lit(2).alias("label"))
    with pytest.raises(ConfigError, match="binary"):
        add_spurious_cue(multiclass, "x", rate=0.9, seed=0)


def test_attribute_join_drops_conflicts_and_the_skewed_split_holds_its_rates():
    from saeprobe.data.benchmarks import join_attribute, skewed_split

    rng = np.random.default_rng(0)
    names = [f"name {i}" for i in range(400)]
    task = pl.DataFrame(
        {"prompt": names + ["twice"] * 2, "target": list(rng.integers(0, 2, 400)) + [0, 1]}
    )
    attr = pl.DataFrame(
        {"prompt": names[100:] + ["twice"], "target": list(rng.choice(["f", "m"], 300)) + ["f"]}
    )
    joined = join_attribute(task, attr)
    assert joined.height == 300 and "twice" not in joined["text"].to_list()
    out = skewed_split(joined, skew=0.8, test_per_cell=10, seed=0)
    test = out.filter(pl.col("split") == "test")
    assert test.group_by("label", "group").len()["len"].to_list() == [10] * 4
    train = out.filter(pl.col("split") == "train")
    agree = ((train["label"] == 1) == (train["group"] == "m")).mean()
    assert agree == pytest.approx(0.8, abs=0.01)
    counts = train.group_by("label").len().sort("label")["len"].to_list()
    assert counts[0] == counts[1]
    with pytest.raises(ConfigError, match="test_per_cell"):
        skewed_split(joined, skew=0.8, test_per_cell=200, seed=0)


def test_the_packaged_politician_and_gender_tasks_join_on_hundreds_of_names():
    from saeprobe.data.benchmarks import join_attribute
    from saeprobe.data.sources import read_csv_zst, sae_probes_tasks

    tasks = sae_probes_tasks()
    joined = join_attribute(
        read_csv_zst(tasks["7_hist_fig_ispolitician"]), read_csv_zst(tasks["5_hist_fig_ismale"])
    )
    assert joined.height > 500
    assert sorted(joined["group"].unique().to_list()) == ["0", "1"]


def signed_sae() -> TopKSAE:
    """Latents for each feature's positive side, and one for feature 1's negative side."""
    directions = torch.cat([torch.eye(4), -torch.eye(4)[1:2]])  # (5, 4)
    sae = TopKSAE(SAEConfig(d_in=4, d_sae=5, k=5))
    with torch.no_grad():
        sae.W_enc.copy_(directions.T)
        sae.W_dec.copy_(directions)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def cue_split(seed: int = 0):
    X, y = shortcut_problem(600, seed, agree=0.95)
    X_test, y_test = shortcut_problem(400, seed + 1, agree=0.5)
    group_test = np.where(X_test[:, 1] > 0, "cue", "no cue")
    from saeprobe.regularization.inputs import EvalSet, Split

    return Split(X, y, {"test": EvalSet(X_test, y_test, group_test)})


def test_selfreg_beats_the_plain_classifier_on_a_spurious_cue_with_a_paired_test():
    from saeprobe.regularization.experiment import run_methods, summarize_methods

    results = run_methods(
        cue_split(),
        signed_sae(),
        np.array([1, 4]),  # the cue, both signs
        ["plain", "l2", "selfreg", "selfreg_removal", "selfreg_penalty"],
        lambdas=[10.0],
        seeds=[0, 1, 2, 3, 4],
        base=ClassifierConfig(lr=0.01, max_epochs=20),
    )
    assert results.height == 25
    summary = summarize_methods(results)
    acc = {r["method"]: r for r in summary.filter(pl.col("metric") == "accuracy").to_dicts()}
    assert acc["selfreg"]["mean"] > acc["plain"]["mean"] + 0.2
    assert acc["selfreg"]["p_vs_plain"] < 0.01
    assert acc["selfreg_removal"]["mean"] > acc["plain"]["mean"] + 0.2
    assert acc["selfreg"]["ci_low"] <= acc["selfreg"]["mean"] <= acc["selfreg"]["ci_high"]
    # The cue is the group: the plain classifier's scores reveal it, removal hides it from
    # the inputs.
    leak = summary.filter(pl.col("metric") == "input_leakage")
    by_method = dict(zip(leak["method"].to_list(), leak["mean"].to_list(), strict=True))
    assert by_method["plain"] > 0.95
    assert by_method["selfreg_removal"] < 0.7


def test_unknown_methods_and_a_missing_reference_are_refused():
    from saeprobe.regularization.experiment import run_methods, summarize_methods

    with pytest.raises(ConfigError, match="unknown selfreg method"):
        run_methods(
            cue_split(), identity_sae(4), np.array([1]), ["magic"], [1.0], [0], ClassifierConfig()
        )
    results = run_methods(
        cue_split(),
        identity_sae(4),
        np.array([1]),
        ["l2"],
        [1.0],
        [0],
        ClassifierConfig(max_epochs=2),
    )
    with pytest.raises(ConfigError, match="'plain'"):
        summarize_methods(results)


def test_every_method_is_scored_on_every_evaluation_set_against_plain_on_that_set():
    from saeprobe.regularization.experiment import run_methods, summarize_methods
    from saeprobe.regularization.inputs import EvalSet, Split

    split = cue_split()
    X_ood, y_ood = shortcut_problem(200, 7, agree=0.0)  # the cue reversed
    evals = dict(split.evals, ood=EvalSet(X_ood, y_ood))
    results = run_methods(
        Split(split.X_train, split.y_train, evals),
        signed_sae(),
        np.array([1, 4]),
        ["plain", "selfreg_removal"],
        lambdas=[1.0],
        seeds=[0, 1],
        base=ClassifierConfig(lr=0.01, max_epochs=10),
    )
    assert sorted(set(results["split"].to_list())) == ["ood", "test"]
    assert results.height == 2 * 2 * 2
    acc = summarize_methods(results).filter(pl.col("metric") == "accuracy")
    ood = {r["method"]: r["mean"] for r in acc.filter(pl.col("split") == "ood").to_dicts()}
    # A classifier that reads the cue fails where the cue is reversed; removal does not.
    assert ood["selfreg_removal"] > ood["plain"] + 0.3
    assert acc.filter(pl.col("split") == "ood")["n"].to_list() == [2, 2]
