"""The full benchmark: one task end to end in memory, what its params may say, and the
preset that lists every binary task of the packaged benchmark."""

import copy

import numpy as np
import pytest
import torch
import yaml

from saeprobe import config
from saeprobe.benchmark import preset_text, run_task, task_representations
from saeprobe.config import ExtractConfig
from saeprobe.data.sources import binary_sae_probes_tasks
from saeprobe.errors import ConfigError
from saeprobe.extract import extract_dataset, pooled_states
from saeprobe.sae import SAEConfig, build_sae
from saeprobe.store import read_pooled
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
TEXTS = [
    f"text number {i} is {'short' if i % 3 else 'a little longer than that'}" for i in range(9)
]


def small_params() -> dict:
    """The default params, cut to a MiniLM layer and a few quick fits."""
    params = copy.deepcopy(PARAMS)
    params["extract"]["layers"] = [2, 6, 12]  # 2: MiniLM's; 6 and 12: the other sections'
    params["probe"].update(n_jobs=1, sae_k=[4])
    params["regimes"] = {
        "normal": {"seeds": 1, "max_train": 1024},
        "scarcity": {"seeds": 1, "levels": [4, 8], "layers": [6]},
        "shift": {"seeds": 1},
    }
    params["benchmark"].update(
        tasks=["87_glue_cola"],
        layer=2,
        max_examples=40,
        max_ood_examples=20,
        methods=["logreg_l2", "knn", "sae_topk"],
        regimes=["normal", "scarcity", "shift"],
    )
    return params


def topk_sae(d_in: int):
    torch.manual_seed(0)
    return build_sae(SAEConfig(d_in=d_in, d_sae=2 * d_in, architecture="topk", k=8))


def test_pooled_states_in_memory_equal_the_extract_stages_pooled_vectors(minilm, tmp_path):
    ids = [f"d{i}" for i in range(len(TEXTS))]
    cfg = ExtractConfig(layers=[2, 4], max_length=12, batch_tokens=40, pooling=["mean", "last"])
    extract_dataset(minilm, TEXTS, ids, cfg, tmp_path / "acts", progress=False)
    pooled = pooled_states(minilm, TEXTS, ids, cfg, progress=False)
    for layer in (2, 4):
        for pooling in ("mean", "last"):
            stored_ids, stored = read_pooled(tmp_path / "acts" / "pooled.parquet", layer, pooling)
            rows = [stored_ids.index(doc_id) for doc_id in ids]  # the store: batch order
            np.testing.assert_array_equal(pooled[f"L{layer}_{pooling}"], stored[rows])


def test_the_sae_code_of_the_last_token_is_the_sae_of_its_hidden_state():
    import polars as pl

    hidden = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    prepared = pl.DataFrame({"text": [f"t{i}" for i in range(5)]})
    probe = config.benchmark_probe_config(PARAMS, config.benchmark_config(PARAMS))
    sae = topk_sae(16)
    reps = task_representations(prepared, {"L3_last": hidden}, sae, 3, probe)
    assert [(r.layer, r.name, r.pooling) for r in reps] == [
        (-1, "text", ""),
        (3, "hidden", "last"),
        (3, "sae_pretrained", "last"),
    ]
    np.testing.assert_array_equal(reps[1].X, hidden)
    expected = sae.encode(torch.from_numpy(hidden)).detach().numpy()
    np.testing.assert_array_equal(reps[2].X.toarray(), expected)


def test_one_task_runs_end_to_end_with_every_configured_regime_and_method(minilm):
    params = small_params()
    config.validate_all(params)
    cfg = config.benchmark_task_config(params)
    results, timing = run_task(
        "87_glue_cola",
        cfg,
        model=minilm,
        sae=topk_sae(minilm.d_model),
        extract=config.benchmark_extract_config(params, cfg),
        probe=config.benchmark_probe_config(params, cfg),
        regimes=config.benchmark_regimes(params, cfg),
        seed=0,
    )
    fitted = results.filter(results["status"] == "ok")
    assert set(fitted["regime"]) == {"normal", "scarcity", "shift"}  # CoLA has a shifted split
    assert set(fitted["layer"]) == {2}  # the regime's own `layers: [6]` does not narrow it
    assert set(fitted["representation"]) == {"hidden", "sae_pretrained"}
    assert set(fitted["method"]) == {"logreg_l2", "knn", "sae_top4"}
    assert set(results["train_dataset"]) == {"87_glue_cola"}
    assert fitted["roc_auc"].is_between(0, 1).all()
    assert timing["docs"] == 40 + 20
    assert {"prepare_s", "hidden_states_and_sae_s", "probe_s", "by_method"} <= set(timing)
    again, _ = run_task(
        "87_glue_cola",
        cfg,
        model=minilm,
        sae=topk_sae(minilm.d_model),
        extract=config.benchmark_extract_config(params, cfg),
        probe=config.benchmark_probe_config(params, cfg),
        regimes=config.benchmark_regimes(params, cfg),
        seed=0,
    )
    assert again.equals(results)  # seeded


def test_the_benchmark_probes_only_its_methods_on_the_pretrained_sae():
    cfg = config.benchmark_config(PARAMS)
    probe = config.benchmark_probe_config(PARAMS, cfg)
    assert probe.baselines == ["logreg_l2", "pca", "knn", "xgboost", "mlp"]
    assert probe.sae_methods == ["sae_topk"]
    assert probe.mosaic_methods == [] and probe.compare_poolings == []
    assert probe.saes == ["pretrained"]
    regimes = config.benchmark_regimes(PARAMS, cfg)
    assert list(regimes) == list(config.REGIMES)
    assert all(regime.layers is None for regime in regimes.values())


def test_a_tasks_stage_does_not_read_the_task_list():
    params = copy.deepcopy(PARAMS)
    params["benchmark"]["tasks"] = ["96_spam_is"]
    assert config.benchmark_task_config(params) == config.benchmark_task_config(PARAMS)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(layer=7), r"'benchmark.layer' is 7, not in 'extract.layers'"),
        (lambda b: b.update(methods=["logreg"]), r"benchmark.methods"),
        (lambda b: b.update(regimes=["normal", "drift"]), r"benchmark.regimes"),
        (lambda b: b.update(tasks=["96_spam_is", "96_spam_is"]), "lists a task twice"),
        (lambda b: b.update(tasks=["../x"]), "expected task names"),
        (lambda b: b.update(max_examples=2), r"'benchmark.max_examples' is 2"),
    ],
)
def test_bad_benchmark_params_are_refused(change, message):
    params = copy.deepcopy(PARAMS)
    change(params["benchmark"])
    with pytest.raises(ConfigError, match=message):
        config.validate_all(params)


def test_an_sae_probe_on_pooled_codes_is_refused_since_the_benchmark_encodes_one_token():
    params = copy.deepcopy(PARAMS)
    params["probe"]["sae_pooling"] = "mean"
    with pytest.raises(ConfigError, match="'probe.sae_pooling' is 'mean'.*needs 'last'"):
        config.validate_all(params)
    params["benchmark"]["methods"] = ["logreg_l2"]  # no SAE probe: nothing to encode
    config.validate_all(params)


def test_the_preset_is_params_yaml_with_every_binary_task_of_the_benchmark():
    tasks = binary_sae_probes_tasks()
    assert len(tasks) == 113
    expected = preset_text((ROOT / "params.yaml").read_text(), tasks)
    actual = (ROOT / "params-benchmark.yaml").read_text()
    assert actual == expected, "params-benchmark.yaml is stale: run make params-benchmark.yaml"
    preset = yaml.safe_load(actual)
    config.validate_all(preset)
    assert preset["benchmark"]["tasks"] == tasks
    preset["benchmark"]["tasks"] = []
    assert preset == PARAMS


def test_the_preset_needs_the_empty_task_list_it_replaces():
    with pytest.raises(ValueError, match="expected `  tasks: \\[\\]` under benchmark"):
        preset_text("benchmark:\n  tasks: [a]\n", ["b"])
