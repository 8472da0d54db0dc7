"""The self-regularization stages (unintended@, selfreg@) in the tiny pipeline, and their
answers to bad input."""

import json

import numpy as np
import polars as pl
import pytest
import torch

from saeprobe import config
from saeprobe.config import AttributeJudgeConfig, JudgesConfig, LLMEndpointConfig
from saeprobe.errors import ConfigError
from saeprobe.regularization.inputs import check_sae_matches
from saeprobe.regularization.report import lambda_curves, method_key, selfreg_metrics
from saeprobe.regularization.unintended import combine_decisions, judge_latents
from saeprobe.sae.base import SAEConfig
from saeprobe.sae.topk import TopKSAE
from tests.conftest import TINY_PARAMS, dvc, ran
from tests.test_pipeline import changed_params, out_of_date


def read(project, path):
    return json.loads((project / path).read_text())


@pytest.mark.slow
def test_the_judges_mark_latents_and_every_method_is_scored_on_test_and_ood(tiny_project):
    judged = read(tiny_project, "reports/selfreg/grammar_cue/L1/unintended.json")
    assert judged["judges"]["llm"] == "not configured"  # base_url null: said, not failed
    assert judged["judges"]["concepts"]["judged"] > 0
    table = pl.read_parquet(tiny_project / "data/unintended/grammar_cue/L1.parquet")
    marked = table.filter(pl.col("unintended"))
    assert judged["unintended"] == marked["latent"].n_unique()
    assert marked["spans"].is_not_null().all()
    assert read(tiny_project, "data/unintended/grammar_cue/L1.llm_cache.json") == {}

    metrics = read(tiny_project, "reports/selfreg/grammar_cue/L1/metrics.json")
    assert set(metrics) >= {"test", "ood", "unintended", "empty_unintended"}
    expected = {"plain", "l2"}
    if not metrics["empty_unintended"]:
        expected |= {"selfreg_lambda1", "selfreg_lambda10", "selfreg_removal"}
        expected |= {"selfreg_penalty_lambda1", "selfreg_penalty_lambda10"}
    assert set(metrics["test"]) == expected
    accuracy = metrics["test"]["l2"]["accuracy"]
    assert accuracy["ci_low"] <= accuracy["mean"] <= accuracy["ci_high"]
    assert 0 <= accuracy["p_vs_plain"] <= 1
    assert "dp_gap" in metrics["test"]["plain"]  # the cue is the group
    curve = (tiny_project / "reports/plots/selfreg/grammar_cue-L1/accuracy.csv").read_text()
    assert curve.startswith("series,lambda,accuracy")
    assert "selfreg/grammar_cue-L1/dp_gap.csv" in dvc(tiny_project, "plots", "show", "--json")
    # Detail, not headline: DVC shows it when asked by name, not in the default listing.
    detail = "reports/selfreg/grammar_cue/L1/metrics.json"
    assert detail not in dvc(tiny_project, "metrics", "show")
    assert "p_vs_plain" in dvc(tiny_project, "metrics", "show", "--json", detail)

    attribute = read(tiny_project, "reports/selfreg/politician_gender/L1/unintended.json")
    d_sae = 2 * 384
    assert attribute["judges"]["attribute"]["judged"] == d_sae
    results = pl.read_parquet(tiny_project / "data/selfreg/politician_gender/L1.parquet")
    assert set(results["split"]) == {"test"} and results["seed"].n_unique() == 2
    assert results["dp_gap"].is_not_nan().all() and results["score_leakage"].is_not_nan().all()


@pytest.mark.slow
def test_a_selfreg_parameter_puts_only_the_selfreg_stages_out_of_date(tiny_project):
    def change(params):
        params["selfreg"]["lambdas"] = [3.0]

    with changed_params(tiny_project, change):
        assert out_of_date(tiny_project) == {
            "check_params",
            "selfreg@grammar_cue-1",
            "selfreg@politician_gender-1",
        }


@pytest.mark.slow
def test_an_empty_unintended_set_runs_the_baselines_and_is_flagged(tiny_project):
    def change(params):
        params["unintended"]["benchmarks"]["grammar_cue"] = {"llm": {"task": "Grammatical?"}}

    with changed_params(tiny_project, change):
        stages = ran(dvc(tiny_project, "repro"))
        assert {"unintended@grammar_cue-1", "selfreg@grammar_cue-1"} <= stages
        metrics = read(tiny_project, "reports/selfreg/grammar_cue/L1/metrics.json")
        assert metrics["empty_unintended"] is True and metrics["unintended"] == 0
        assert set(metrics["test"]) == {"plain", "l2"}


def tiny_sae(layer=1, model="minilm"):
    return TopKSAE(SAEConfig(d_in=4, d_sae=6, k=2, layer=layer, model=model))


def test_the_attribute_judge_without_a_group_column_names_it():
    with pytest.raises(ConfigError, match="needs the data set's 'group' column"):
        judge_latents(
            JudgesConfig(attribute=AttributeJudgeConfig()),
            cards=pl.DataFrame(),
            codes=np.ones((4, 6)),
            labels=np.array([0, 1, 0, 1]),
            group=None,
            endpoint=LLMEndpointConfig(),
            cache_path=None,
            where="unintended@x-1",
        )


def test_a_partly_empty_group_column_is_refused(tmp_path):
    from saeprobe.regularization.inputs import load_split
    from saeprobe.store import PooledWriter

    ids = [f"d{i}" for i in range(6)]
    writer = PooledWriter(tmp_path / "pooled.parquet", [1], ["last"], 2)
    writer.append(ids, {"L1_last": np.ones((6, 2), np.float32)})
    writer.close()
    prepared = pl.DataFrame(
        {
            "id": ids,
            "label": [0, 1, 0, 1, 0, 1],
            "split": ["train"] * 4 + ["test"] * 2,
            "group": ["a", None, "b", "a", "a", "b"],
        }
    )
    with pytest.raises(ConfigError, match="'group' is empty on 1 of 4 rows"):
        load_split(prepared, tmp_path / "pooled.parquet", 1, "last", "selfreg@x-1")


def test_fairness_is_not_measured_on_a_split_with_one_group():
    from saeprobe.regularization.experiment import score

    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    out = score(proba, np.array([0, 1, 1]), np.array(["a", "a", "a"]), seed=0)
    assert np.isnan(out["dp_gap"]) and np.isnan(out["eo_gap"]) and out["accuracy"] == 2 / 3


def test_an_sae_of_another_layer_or_model_is_refused(tmp_path):
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"model": "minilm"}))
    check_sae_matches(tiny_sae(), 1, stats, "selfreg@x-1")
    with pytest.raises(ConfigError, match="trained on layer 3, not 1"):
        check_sae_matches(tiny_sae(layer=3), 1, stats, "selfreg@x-1")
    with pytest.raises(ConfigError, match="activations of 'gemma3-270m'.* of 'minilm'"):
        check_sae_matches(tiny_sae(model="gemma3-270m"), 1, stats, "selfreg@x-1")


def test_combined_decisions_keep_the_spans_of_unintended_latents_only():
    table = pl.DataFrame(
        {
            "latent": [0, 1, 1],
            "decision": ["intended", "unintended", "intended"],
            "judge": ["concepts", "concepts", "attribute"],
            "evidence": [0.1, 0.9, 0.0],
            "detail": ["", "", ""],
        }
    )
    cards = pl.DataFrame(
        {"latent": [0, 1, 1], "rank": [0, 0, 1], "context": ["a«b»", "c«d»", "e«f»"]}
    )
    anyone = combine_decisions(table, cards, "any")
    assert anyone.filter(pl.col("unintended"))["latent"].unique().to_list() == [1]
    assert anyone.filter(pl.col("latent") == 1)["spans"].to_list() == ["c«d» | e«f»"] * 2
    assert anyone.filter(pl.col("latent") == 0)["spans"].is_null().all()
    assert combine_decisions(table, cards, "all")["unintended"].sum() == 0


def test_metrics_keys_carry_lambda_without_dots_and_curves_repeat_the_baselines():
    assert method_key("selfreg", 0.3) == "selfreg_lambda0p3"
    assert method_key("plain", float("nan")) == "plain"
    summary = pl.DataFrame(
        {
            "split": ["test"] * 3,
            "method": ["plain", "selfreg", "selfreg"],
            "lambda": [float("nan"), 1.0, 10.0],
            "metric": ["accuracy"] * 3,
            "mean": [0.7, 0.8, 0.9],
            "std": [0.0] * 3,
            "ci_low": [0.7, 0.8, 0.9],
            "ci_high": [0.7, 0.8, 0.9],
            "n": [5] * 3,
            "p_vs_plain": [float("nan"), 0.01, 0.02],
        }
    )
    metrics = selfreg_metrics(summary, unintended=3)
    assert metrics["test"]["selfreg_lambda10"]["accuracy"]["p_vs_plain"] == 0.02
    assert "p_vs_plain" not in metrics["test"]["plain"]["accuracy"]
    assert metrics["test"]["fairness"].startswith("not measured")  # no dp_gap: no group
    curve = lambda_curves(summary)["accuracy"]
    assert curve.filter(pl.col("series") == "plain")["lambda"].to_list() == [1.0, 10.0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["unintended"]["benchmarks"].update(nope={"llm": {"task": "t"}}), "nope"),
        (lambda p: p["selfreg"].update(methods=["l2"]), "must include 'plain'"),
        (lambda p: p["selfreg"].update(methods=["plain", "magic"]), "'magic'"),
        (lambda p: p["selfreg"].update(seeds=1), "at least 2"),
        (lambda p: p["unintended"]["benchmarks"].update(grammar_cue={}), "names no judge"),
        (lambda p: p["unintended"].update(layers=[2]), "'unintended.layers' has \\[2\\]"),
        (lambda p: p.update(probe_datasets=["spam", "spam"]), "twice"),
        (lambda p: p["selfreg"]["baselines"].update(l2={"l3": 1.0}), "'l3'"),
        (lambda p: p["selfreg"].update(lambdas=[1.0, 1.0]), "lists a value twice"),
        (lambda p: p["selfreg"].update(methods=["plain", "plain"]), "lists a value twice"),
        (lambda p: p["selfreg"]["baselines"].update(l2={"dropout": 1.5}), "dropout' must be"),
        (lambda p: p["selfreg"]["baselines"].update(l2={"l2": -1.0}), "l2' must be >= 0"),
        (lambda p: p["selfreg"]["classifier"].update(max_decays=-1), "max_decays >= 0"),
        (
            lambda p: p["unintended"]["benchmarks"]["politician_gender"]["attribute"].update(
                min_separation=2.0
            ),
            "min_separation in \\[0, 1\\]",
        ),
    ],
)
def test_selfreg_params_mistakes_are_named(change, message):
    params = config.load_params(TINY_PARAMS)
    change(params)
    with pytest.raises(ConfigError, match=message):
        config.validate_all(params)


def test_the_removal_of_nothing_leaves_inputs_unchanged():
    from saeprobe.regularization.penalty import remove_latents

    x = torch.randn(5, 4)
    assert torch.equal(remove_latents(tiny_sae(), x, torch.tensor([], dtype=torch.long)), x)
