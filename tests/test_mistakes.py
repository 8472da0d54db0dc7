"""Every mistake in params or data gets one clear line, a non-zero exit, and leaves the
outputs that exist untouched: one test per kind of mistake."""

import subprocess
import sys
import time

import polars as pl
import pytest
import yaml

from tests.conftest import ROOT

DEFAULT_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def stage(tmp_path, *args, change=None, params=None, env=None):
    """Run `python -m stages.<args>` in tmp_path with the default params, changed."""
    params = params if params is not None else yaml.safe_load(yaml.safe_dump(DEFAULT_PARAMS))
    if change:
        change(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{args[0]}", *args[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"} | (env or {}),
    )


def existing_output(tmp_path, relative: str) -> bytes:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"the previous output")
    return path.read_bytes()


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    return errors[0]


def test_a_misspelled_section_stops_every_stage_before_it_writes(tmp_path):
    before = existing_output(tmp_path, "data/activations/spam/stats.json")

    def change(params):
        params["extrct"] = params.pop("extract")

    for args in (("check_params",), ("extract", "spam")):
        line = one_line_error(stage(tmp_path, *args, change=change))
        assert "unknown section 'extrct'; did you mean 'extract'?" in line
    assert (tmp_path / "data/activations/spam/stats.json").read_bytes() == before


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (
            "probe.baselines",
            ["logreg_l2", "logreg_l3"],
            "has 'logreg_l3'; did you mean 'logreg_l2'",
        ),
        ("regimes.scarcity.methods", ["logreg_l22"], "has 'logreg_l22'; did you mean 'logreg_l2'"),
        ("probe.sae_methods", ["sae_top"], "has 'sae_top'; did you mean 'sae_topk'"),
        ("probe.l1_solver", "sag", "has 'sag'; did you mean 'saga'"),
    ],
)
def test_an_unknown_method_name_is_refused_with_a_suggestion(tmp_path, where, value, expected):
    def change(params):
        *parents, key = where.split(".")
        target = params
        for part in parents:
            target = target[part]
        target[key] = value

    line = one_line_error(stage(tmp_path, "check_params", change=change))
    assert f"'{where}' {expected}" in line


def file_dataset(tmp_path, texts, labels, **columns):
    (tmp_path / "data/raw").mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"text": texts, "label": labels, **columns}).write_csv(tmp_path / "data/raw/d.csv")

    def change(params):
        params["datasets"] = {"mine": {"source": "file", "path": "data/raw/d.csv"}}

    return change


def test_texts_that_all_clash_leave_no_table_and_say_so_with_counts(tmp_path):
    before = existing_output(tmp_path, "data/prepared/mine.parquet")
    change = file_dataset(tmp_path, ["a", "a", "b", "b"] * 3, [0, 1, 0, 1] * 3)
    line = one_line_error(stage(tmp_path, "prepare", "mine", change=change))
    assert "datasets.mine: after removing duplicate and label-conflicting texts" in line
    assert "Examples per class before: {'0': 6, '1': 6}; after: train {}, test {}" in line
    assert (tmp_path / "data/prepared/mine.parquet").read_bytes() == before


def test_one_class_surviving_de_duplication_is_refused(tmp_path):
    texts = [f"spam {i}" for i in range(10)] + ["ham", "ham"]
    change = file_dataset(tmp_path, texts, [1] * 10 + [0, 1])
    line = one_line_error(stage(tmp_path, "prepare", "mine", change=change))
    assert "class(es) ['0'] lack examples in train or test" in line


def test_a_text_column_of_numbers_is_named_with_its_file(tmp_path):
    before = existing_output(tmp_path, "data/prepared/mine.parquet")
    change = file_dataset(tmp_path, list(range(8)), [0, 1] * 4)
    line = one_line_error(stage(tmp_path, "prepare", "mine", change=change))
    assert "data/raw/d.csv: the text column 'text' holds Int64 values; expected text" in line
    assert (tmp_path / "data/prepared/mine.parquet").read_bytes() == before


@pytest.fixture
def prepared_spam(tmp_path):
    result = stage(tmp_path, "prepare", "spam")
    assert result.returncode == 0, result.stderr
    return existing_output(tmp_path, "data/activations/spam/stats.json")


def test_a_model_folder_without_a_model_is_named_at_once(tmp_path, prepared_spam):
    (tmp_path / "data/raw/not-a-model").mkdir(parents=True)

    def change(params):
        params["model"]["name"] = "data/raw/not-a-model"

    line = one_line_error(stage(tmp_path, "extract", "spam", change=change))
    assert "'model.name' data/raw/not-a-model is a folder but holds no model" in line
    assert (tmp_path / "data/activations/spam/stats.json").read_bytes() == prepared_spam


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data/raw/gemma-typo", "'model.name' data/raw/gemma-typo is not a model folder"),
        ("someone/some-model", "as a hub id it is not in the cache"),
    ],
)
def test_a_missing_local_path_or_an_uncached_hub_id_offline_fails_fast(
    tmp_path, prepared_spam, name, expected
):
    def change(params):
        params["model"]["name"] = name

    start = time.perf_counter()
    line = one_line_error(stage(tmp_path, "extract", "spam", change=change))
    assert expected in line and time.perf_counter() - start < 30
    assert (tmp_path / "data/activations/spam/stats.json").read_bytes() == prepared_spam


def test_a_published_sae_for_a_layer_that_is_not_extracted_is_refused(tmp_path):
    def change(params):
        params["sae"]["pretrained"] = {"7": "data/published/l7"}

    line = one_line_error(stage(tmp_path, "check_params", change=change))
    assert "'sae.pretrained' names layer 7, which 'extract.layers' [6] does not extract" in line


def test_a_task_name_typo_gets_a_suggestion(tmp_path):
    def change(params):
        params["datasets"]["spam"]["task"] = "96_spam_si"

    line = one_line_error(stage(tmp_path, "prepare", "spam", change=change))
    assert "sae-probes has no task '96_spam_si'; did you mean one of ['96_spam_is'" in line
