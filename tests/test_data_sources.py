import json

import polars as pl
import pytest

from saeprobe.config import DatasetConfig
from saeprobe.data.prepare import prepare_dataset
from saeprobe.data.sources import sae_probes_tasks


def _rows(n=40):
    return {
        "body": [f"document number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)],
        "y": ["pos" if i % 2 else "neg" for i in range(n)],
        "gender": ["f" if i % 3 else "m" for i in range(n)],
    }


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_own_file_with_configured_columns_becomes_the_schema(tmp_path, suffix):
    path = tmp_path / f"mine{suffix}"
    df = pl.DataFrame(_rows())
    if suffix == ".csv":
        df.write_csv(path)
    elif suffix == ".parquet":
        df.write_parquet(path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in df.to_dicts()))
    cfg = DatasetConfig(
        source="file", path=str(path), text_column="body", label_column="y", group_column="gender"
    )
    out = prepare_dataset("mine", cfg, seed=0)
    assert out.columns == ["id", "text", "label", "label_name", "split", "group", "domain"]
    assert out.height == 40
    assert dict(zip(out["label_name"], out["label"], strict=True)) == {"neg": 0, "pos": 1}
    assert set(out["group"]) == {"f", "m"}
    assert set(out["split"]) == {"train", "test"}


def test_sae_probes_task_by_full_or_short_name():
    full = prepare_dataset("spam", DatasetConfig(source="sae_probes", task="96_spam_is"), seed=0)
    short = prepare_dataset("spam", DatasetConfig(source="sae_probes", task="spam_is"), seed=0)
    assert full.equals(short)
    assert full["label"].n_unique() == 2
    assert full.height > 1000


def test_sae_probes_ships_113_binary_tasks():
    from saeprobe.data.sources import read_csv_zst

    binary = [
        stem
        for stem, path in sae_probes_tasks().items()
        if read_csv_zst(path)["target"].n_unique() == 2
    ]
    assert len(binary) == 113


def test_sae_probes_ood_file_becomes_the_shifted_split():
    cfg = DatasetConfig(source="sae_probes", task="87_glue_cola", max_examples=200)
    df = prepare_dataset("cola", cfg, seed=0)
    ood = df.filter(pl.col("split") == "ood")
    assert ood.height > 250
    assert set(ood["domain"]) == {"ood"}
    assert set(df.filter(pl.col("split") != "ood")["domain"]) == {"id"}
    assert not set(ood["text"]) & set(df.filter(pl.col("split") != "ood")["text"])


def test_bbc_news_has_five_sorted_classes_and_no_duplicates():
    df = prepare_dataset("bbc", DatasetConfig(source="bbc_news"), seed=0)
    names = df.select("label", "label_name").unique().sort("label")["label_name"].to_list()
    assert names == ["business", "entertainment", "politics", "sports", "tech"]
    assert df.height == 2225 - 98  # the exact duplicates are gone
    assert df["text"].n_unique() == df.height


def test_huggingface_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": _rows()["body"], "label": [0, 1] * 20}).save_to_disk(
        tmp_path / "hf"
    )
    df = prepare_dataset("hf", DatasetConfig(source="huggingface", path=str(tmp_path / "hf")), 0)
    assert df.height == 40 and df["label"].n_unique() == 2


def test_attribute_benchmark_joins_two_tasks_skews_training_and_balances_test():
    cfg = DatasetConfig(
        source="sae_probes_attribute",
        task="7_hist_fig_ispolitician",
        attribute_task="5_hist_fig_ismale",
        skew=0.8,
        test_per_cell=40,
    )
    df = prepare_dataset("politics", cfg, seed=0)
    test = df.filter(pl.col("split") == "test")
    assert test.group_by("label", "group").len()["len"].to_list() == [40] * 4
    train = df.filter(pl.col("split") == "train")
    agree = ((train["label"] == 1) == (train["group"] == "1")).mean()
    assert abs(agree - 0.8) < 0.01
    assert train.height > 200
    assert df.equals(prepare_dataset("politics", cfg, seed=0))
    assert not df.equals(prepare_dataset("politics", cfg, seed=1))


def test_spurious_cue_marks_training_texts_by_label_and_test_texts_at_random():
    cfg = DatasetConfig(
        source="sae_probes",
        task="96_spam_is",
        max_examples=200,
        cue_marker="[via wire]",
        cue_rate=0.9,
    )
    df = prepare_dataset("spam_cue", cfg, seed=0)
    marked = df["text"].str.ends_with(" [via wire]")
    assert (marked == (df["group"] == "cue")).all()
    train = df.filter(pl.col("split") == "train")
    share = train.group_by("label").agg((pl.col("group") == "cue").mean()).sort("label")
    assert share["group"].to_list() == pytest.approx([0.1, 0.9], abs=0.01)
    test = df.filter(pl.col("split") == "test")
    assert (test["group"] == "cue").mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"source": "sae_probes_attribute", "task": "7_hist_fig_ispolitician"}, "attribute_task"),
        (
            {"source": "sae_probes", "task": "96_spam_is", "cue_marker": "x", "cue_rate": 0.2},
            "cue_rate",
        ),
        (
            {
                "source": "sae_probes",
                "task": "96_spam_is",
                "cue_marker": "x",
                "cue_position": "middle",
            },
            "cue_position",
        ),
        (
            {"source": "sae_probes_attribute", "task": "a", "attribute_task": "b", "skew": 1.0},
            "skew",
        ),
        (
            {
                "source": "sae_probes_attribute",
                "task": "a",
                "attribute_task": "b",
                "cue_marker": "x",
            },
            "cue_marker",
        ),
    ],
)
def test_bad_benchmark_params_are_refused_naming_the_key(extra, message):
    from saeprobe import config
    from saeprobe.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        config.dataset_config({"datasets": {"x": extra}}, "x")
