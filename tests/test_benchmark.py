"""The full benchmark: one task end to end in memory, what its params may say, and the
preset that lists every binary task of the packaged benchmark."""

import copy
import shlex

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


def test_the_benchmarks_sae_codes_are_the_features_stages_at_the_last_token(minilm, tmp_path):
    """features@ encodes every stored token and pools the codes; the benchmark encodes the
    last token's hidden state alone: the same codes (float32 tokens, so no rounding apart)."""
    import polars as pl

    from saeprobe.features import encode_documents
    from saeprobe.store import TokenStore

    ids = [f"d{i}" for i in range(len(TEXTS))]
    extract = ExtractConfig(layers=[2], max_length=12, pooling=["last"], token_dtype="float32")
    extract_dataset(minilm, TEXTS, ids, extract, tmp_path / "acts", progress=False)
    sae = topk_sae(minilm.d_model)
    with TokenStore(tmp_path / "acts" / "tokens.h5") as store:
        stored = encode_documents(sae, store, 2, ["last"], [])["last"].toarray()
        rows = [store.doc_ids.index(doc_id) for doc_id in ids]
    probe = config.benchmark_probe_config(PARAMS, config.benchmark_config(PARAMS))
    pooled = pooled_states(minilm, TEXTS, ids, extract, progress=False)
    reps = task_representations(pl.DataFrame({"text": TEXTS}), pooled, sae, 2, probe)
    assert [(r.layer, r.name, r.pooling) for r in reps] == [
        (-1, "text", ""),
        (2, "hidden", "last"),
        (2, "sae_pretrained", "last"),
    ]
    assert reps[2].X.nnz > 0
    np.testing.assert_allclose(reps[2].X.toarray(), stored[rows], rtol=1e-5, atol=1e-6)


def test_one_task_runs_end_to_end_with_every_configured_regime_and_method(minilm):
    params = small_params()
    config.validate_all(params)
    cfg = config.benchmark_task_config(params)

    def run():
        return run_task(
            "87_glue_cola",
            cfg,
            model=minilm,
            sae=topk_sae(minilm.d_model),
            extract=config.benchmark_extract_config(params, cfg),
            probe=config.benchmark_probe_config(params, cfg),
            regimes=config.benchmark_regimes(params, cfg),
            seed=0,
        )

    results, timing = run()
    fitted = results.filter(results["status"] == "ok")
    assert set(fitted["regime"]) == {"normal", "scarcity", "shift"}  # CoLA has a shifted split
    assert set(fitted["layer"]) == {2}  # the regime's own `layers: [6]` does not narrow it
    assert set(fitted["representation"]) == {"hidden", "sae_pretrained"}
    assert set(fitted["method"]) == {"logreg_l2", "knn", "sae_top4"}
    assert set(results["train_dataset"]) == {"87_glue_cola"}
    assert fitted["roc_auc"].is_between(0, 1).all()
    assert timing["docs"] == 40 + 20
    assert {"prepare_s", "hidden_states_and_sae_s", "probe_s", "by_method"} <= set(timing)
    again, _ = run()
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
    params["benchmark"]["tasks"] = ["96_spam_is"]
    change(params["benchmark"])
    with pytest.raises(ConfigError, match=message):
        config.validate_all(params)


def test_an_sae_probe_on_pooled_codes_is_refused_since_the_benchmark_encodes_one_token():
    params = copy.deepcopy(PARAMS)
    params["probe"]["sae_pooling"] = "mean"
    config.validate_all(params)  # no task: the benchmark constrains nothing
    params["benchmark"]["tasks"] = ["96_spam_is"]
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


def test_the_preset_written_from_itself_is_the_same_preset():
    """After `cp params-benchmark.yaml params.yaml`, `make params-benchmark.yaml` still works."""
    preset = (ROOT / "params-benchmark.yaml").read_text()
    assert preset_text(preset, binary_sae_probes_tasks()) == preset
    assert "    - 7_hist_fig_ispolitician\n" in preset_text(preset, ["7_hist_fig_ispolitician"])
    with pytest.raises(ValueError, match="no top-level `benchmark:` section"):
        preset_text("seed: 0\n", ["b"])


def test_every_task_of_the_preset_reaches_its_stage_as_one_argument():
    """Some task names hold spaces: the stage's command quotes them."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["benchmark"]["do"]["cmd"]
    tasks = yaml.safe_load((ROOT / "params-benchmark.yaml").read_text())["benchmark"]["tasks"]
    assert any(" " in task for task in tasks)
    for task in tasks:
        assert shlex.split(cmd.replace("${item}", task))[3:] == [task]
