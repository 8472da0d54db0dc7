"""The one source of configuration: params.yaml and the config dataclasses agree, every key
is documented and required, and importing the config loads no domain module."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from saeprobe import config
from saeprobe.errors import ConfigError
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
SECTIONS = {
    "model": config.ModelConfig,
    "extract": config.ExtractConfig,
    "corpus": config.CorpusConfig,
    "sae": config.SAETrainConfig,
    "finetune": config.FinetuneConfig,
    "sae_eval": config.SAEEvalConfig,
    "features": config.FeaturesConfig,
    "probe": config.ProbeConfig,
    "probe_report": config.ProbeReportConfig,
    "selfreg": config.SelfRegConfig,
    "transfer": config.TransferConfig,
    "multitoken": config.MultiTokenConfig,
    "benchmark": config.BenchmarkConfig,
}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_code_defaults_are_the_defaults_of_params_yaml(section):
    cls = SECTIONS[section]
    assert config.parse(cls, PARAMS[section], section) == cls()


def test_every_reader_accepts_the_default_params():
    for name in config.dataset_names(PARAMS):
        config.dataset_config(PARAMS, name)
    readers = [
        config.model_config,
        config.extract_config,
        config.corpus_config,
        config.sae_train_config,
        config.finetune_config,
        config.sae_eval_config,
        config.features_config,
        config.probe_config,
        config.probe_report_config,
        config.regime_configs,
        config.layers,
        config.seed,
        config.probe_datasets,
        config.finetune_datasets,
        config.sae_card_config,
        config.ce_docs,
        config.max_length,
        config.benchmark_config,
        config.benchmark_task_config,
        config.unintended_config,
        config.selfreg_config,
        config.transfer_config,
        config.multitoken_config,
    ]
    for read in readers:
        read(PARAMS)
    config.validate_all(PARAMS)
    assert set(PARAMS) == set(config.SECTIONS)


def test_every_config_field_is_documented_in_params_yaml():
    text = (ROOT / "params.yaml").read_text()
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert f"{field.name}:" in text, f"{section}.{field.name} is not in params.yaml"


def test_importing_the_config_loads_no_domain_module():
    code = (
        "import sys, saeprobe.config; "
        "print(sorted(m for m in sys.modules if m.startswith('saeprobe')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "['saeprobe', 'saeprobe.config', 'saeprobe.errors']"


def test_a_user_file_outside_the_tracked_folder_is_refused():
    params = {"datasets": {"mine": {"source": "file", "path": "/home/me/reviews.csv"}}}
    with pytest.raises(ConfigError, match=r"'datasets.mine.path' .* must lie under data/raw/"):
        config.dataset_config(params, "mine")
    params["datasets"]["mine"]["path"] = "data/raw/reviews.csv"
    assert config.dataset_config(params, "mine").path == "data/raw/reviews.csv"


def test_a_published_sae_outside_the_tracked_folder_is_refused():
    sae = PARAMS["sae"] | {"pretrained": {"6": "../saes/layer6"}}
    with pytest.raises(ConfigError, match=r"'sae.pretrained.6' .* under data/published/"):
        config.sae_train_config({"sae": sae})


@pytest.mark.parametrize(
    ("regime", "levels", "expected"),
    [
        ("scarcity", [1, 8], "training sizes >= 2"),
        ("imbalance", [0.0, 0.5], "positive shares in \\(0, 1\\)"),
        ("noise", [1.5], "flip shares in \\[0, 1\\]"),
    ],
)
def test_regime_levels_out_of_range_are_refused(regime, levels, expected):
    params = {"regimes": {regime: {"seeds": 1, "levels": levels}}}
    with pytest.raises(ConfigError, match=f"'regimes.{regime}.levels' must be {expected}"):
        config.regime_configs(params)


def test_a_regime_narrowed_to_a_data_set_that_is_not_probed_is_refused():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["regimes"]["noise"]["datasets"] = ["spam", "spma"]
    with pytest.raises(ConfigError, match=r"'regimes.noise.datasets' has \['spma'\]"):
        config.validate_all(params)


def test_a_data_set_without_the_key_its_source_needs_is_refused():
    with pytest.raises(ConfigError, match="source 'sae_probes' but no 'task'"):
        config.dataset_config({"datasets": {"x": {"source": "sae_probes"}}}, "x")


def test_data_set_names_that_outputs_use_are_refused():
    with pytest.raises(ConfigError, match=r"\['corpus'\] are taken by pipeline outputs"):
        config.dataset_names({"datasets": {"corpus": {"source": "bbc_news"}}})


def test_a_non_topk_sae_architecture_is_refused_since_every_sae_is_fine_tuned():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sae"]["architecture"] = "relu"
    with pytest.raises(ConfigError, match="'sae.architecture' is 'relu'; .* needs topk"):
        config.validate_all(params)


@pytest.mark.parametrize(
    "change, message",
    [
        # a probe data set: features@ encodes its documents with its fine-tuned SAE
        (lambda p: p["finetune_datasets"].remove("bbc"), r"lacks \['bbc'\].*probe_datasets"),
        # a transfer source: its probes read the SAE fine-tuned on it
        (
            lambda p: p["finetune_datasets"].remove("toxicity"),
            r"lacks \['toxicity'\].*transfer.pairs.toxicity-hate.train",
        ),
        (
            lambda p: p["finetune_datasets"].remove("truthqa_tf"),
            r"lacks \['truthqa_tf'\].*cross_model.datasets",
        ),
        (
            lambda p: p["finetune_datasets"].remove("sentiment_cue"),
            r"lacks \['sentiment_cue'\].*unintended.benchmarks",
        ),
        (lambda p: p["finetune_datasets"].append("nope"), r"names \['nope'\], which 'datasets'"),
        (lambda p: p["finetune_datasets"].append("spam"), "lists a data set twice"),
    ],
)
def test_finetune_datasets_must_cover_every_fine_tuned_sae_a_stage_reads(change, message):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    change(params)
    with pytest.raises(ConfigError, match=message):
        config.validate_all(params)


def test_transfer_targets_need_no_fine_tuned_sae_unless_a_stage_reads_it():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "movie_sentiment" not in params["finetune_datasets"]
    config.validate_all(params)
    params["transfer"]["saes"] = ["pretrained"]
    params["finetune_datasets"].remove("toxicity")
    config.validate_all(params)  # no stage reads toxicity's fine-tuned SAE now


def test_the_readmes_selfreg_preset_is_valid_params():
    import re

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- selfreg-preset -->")[1].split("```")[1]
    settings = re.findall(r"-S (\S+)=(\S+)", block)
    assert len(settings) == 7
    params = config.load_params(ROOT / "params.yaml")
    for key, value in settings:
        section, field = key.split(".")
        params[section][field] = yaml.safe_load(value)
    config.validate_all(params)
    cfg = config.sae_train_config(params)
    assert (cfg.tied, cfg.expansion, cfg.k, cfg.k_start, cfg.aux_k, cfg.loss) == (
        True,
        16,
        20,
        200,
        0,
        "per_token",
    )


@pytest.mark.parametrize(
    "name",
    ["params.yaml", "params-full.yaml", "tests/data/tiny_params.yaml", "tests/data/ci_params.yaml"],
)
def test_params_stay_valid_yaml_after_dvc_rewrites_them(name, tmp_path):
    """`dvc exp run -S` round-trips params.yaml through its own YAML writer, which drops
    the quotes of a string in a flow mapping (`{task: "Is it?"}`) and leaves invalid YAML."""
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / name).read_text())
    with modify_yaml(path) as data:
        data["seed"] = 1
    params = config.load_params(path)
    config.validate_all(params)
    assert params["seed"] == 1


# What params-full.yaml may change: the run's scale (data sets and the stages over them,
# seeds, levels' seeds, search sizes), never a method's settings.
FULL_RUN_SCALE = {
    ("datasets",),
    ("extract", "layers"),
    ("probe_datasets",),
    ("finetune_datasets",),
    ("sae_eval", "ce_docs"),
    ("probe", "sae_k"),
    ("probe", "grids", "xgboost", "trials"),
    *((("regimes", regime, "seeds")) for regime in config.REGIMES),
    *((("regimes", regime, "datasets")) for regime in config.REGIMES),
    ("regimes", "noise", "levels"),
    ("unintended", "layers"),
    ("unintended", "benchmarks"),
    ("selfreg", "seeds"),
    ("multitoken", "datasets"),
    ("transfer", "pairs"),
    ("transfer", "seeds"),
    ("cross_model", "datasets"),
}


def differences(a, b, path=()):
    """The paths (key tuples) where two parsed YAML trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            if key not in a or key not in b:
                yield (*path, key)
            else:
                yield from differences(a[key], b[key], (*path, key))
    elif a != b:
        yield path


def test_the_full_run_is_valid_and_differs_from_the_default_only_in_scale():
    full = config.load_params(ROOT / "params-full.yaml")
    config.validate_all(full)
    changed = set(differences(PARAMS, full))
    outside = {p for p in changed if not any(p[: len(s)] == s for s in FULL_RUN_SCALE)}
    assert not outside, f"params-full.yaml changes more than the scale: {sorted(outside)}"
    assert len(config.dataset_names(full)) > len(config.dataset_names(PARAMS))
    assert len(full["transfer"]["pairs"]) > len(PARAMS["transfer"]["pairs"])
