import polars as pl
import pytest

from saeprobe import config
from saeprobe.config import DatasetConfig, ExtractConfig, ModelConfig
from saeprobe.data.prepare import prepare_dataset
from saeprobe.errors import ConfigError
from saeprobe.extract import extract_dataset
from saeprobe.models import load_model


def _csv(tmp_path, **columns):
    path = tmp_path / "d.csv"
    pl.DataFrame(columns).write_csv(path)
    return str(path)


def test_unknown_dataset_name_lists_the_known_ones():
    params = {"datasets": {"spam": {"source": "sae_probes", "task": "96_spam_is"}}}
    with pytest.raises(ConfigError, match=r"no data set named 'nope' under 'datasets'"):
        config.dataset_config(params, "nope")


def test_unknown_sae_probes_task_suggests_names():
    with pytest.raises(ConfigError, match=r"datasets.x.task: sae-probes has no task 'spam'.*96"):
        prepare_dataset("x", DatasetConfig(source="sae_probes", task="spam"), 0)


def test_unknown_key_in_params_is_named():
    expected = r"unknown key 'datasets.x.colour'; expected one of \[.*'domain_column'"
    with pytest.raises(ConfigError, match=expected):
        config.parse(DatasetConfig, {"source": "file", "colour": 1}, "datasets.x")


def test_a_misspelled_key_gets_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'extract.layer'; did you mean 'layers'"):
        config.parse(ExtractConfig, {"layer": [6]}, "extract")


def test_a_misspelled_section_gets_a_suggestion(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 0\nextrct:\n  layers: [6]\n")
    with pytest.raises(ConfigError, match=r"unknown section 'extrct'; did you mean 'extract'"):
        config.load_params(tmp_path / "params.yaml")


def test_a_key_left_out_of_params_is_named_not_defaulted():
    raw = {k: v for k, v in ExtractConfig().__dict__.items() if k != "max_length"}
    with pytest.raises(ConfigError, match=r"'extract' is missing 'max_length'"):
        config.extract_config({"extract": raw})


def test_file_without_named_columns(tmp_path):
    path = _csv(tmp_path, body=["a", "b"], y=[0, 1])
    cfg = DatasetConfig(source="file", path=path, text_column="text", label_column="y")
    with pytest.raises(ConfigError, match=r"d.csv: no column\(s\) \['text'\]; the file has"):
        prepare_dataset("x", cfg, 0)


def test_missing_file_is_named(tmp_path):
    cfg = DatasetConfig(source="file", path=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match=r"datasets.x.path: file .*nope.csv does not exist"):
        prepare_dataset("x", cfg, 0)


def test_empty_text_is_rejected_with_its_row(tmp_path):
    path = _csv(tmp_path, text=["fine", "  ", "also fine", "ok"], label=[0, 1, 0, 1])
    with pytest.raises(ConfigError, match=r"1 empty text\(s\), e.g. at row\(s\) \[1\]"):
        prepare_dataset("x", DatasetConfig(source="file", path=path), 0)


def test_label_column_with_one_class(tmp_path):
    path = _csv(tmp_path, text=["a", "b", "c", "d"], label=[1, 1, 1, 1])
    with pytest.raises(ConfigError, match=r"label column has 1 class\(es\)"):
        prepare_dataset("x", DatasetConfig(source="file", path=path), 0)


def test_many_valued_label_is_taken_for_a_regression_target():
    with pytest.raises(ConfigError, match="regression target"):
        prepare_dataset("x", DatasetConfig(source="sae_probes", task="2_hist_fig_birthyear"), 0)


def test_continuous_label_is_rejected():
    with pytest.raises(ConfigError, match="non-integer numbers"):
        prepare_dataset("x", DatasetConfig(source="sae_probes", task="11_us_lat"), 0)


def test_model_path_that_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"'model.name' .*/nowhere is not a model folder"):
        load_model(ModelConfig(name=str(tmp_path / "nowhere")))


def test_hub_id_while_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="as a hub id it is not in the cache"):
        load_model(ModelConfig(name="someone/not-cached-model", device="cpu"))


def test_layer_out_of_range(minilm, tmp_path):
    cfg = ExtractConfig(layers=[7])
    with pytest.raises(ConfigError, match=r"'extract.layers' has \[7\]; .*0..6"):
        extract_dataset(minilm, ["a text"], ["a"], cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_pooling_name():
    with pytest.raises(ConfigError, match=r"'extract.pooling' has 'median'; did you mean 'mean'"):
        config.extract_config({"extract": ExtractConfig().__dict__ | {"pooling": ["median"]}})


def test_wrong_type_in_params():
    with pytest.raises(ConfigError, match=r"'extract.max_length' must be int, got '128'"):
        config.extract_config({"extract": ExtractConfig().__dict__ | {"max_length": "128"}})
