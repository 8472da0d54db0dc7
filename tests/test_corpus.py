import numpy as np
import polars as pl
import pytest

from saeprobe.config import DatasetConfig
from saeprobe.data.corpus import prepare_corpus
from saeprobe.data.sources import load_source

try:
    from saeprobe.config import CorpusConfig
except ImportError:
    from saeprobe.data.corpus import CorpusConfig

QQP, AGNEWS = "91_glue_qqp", "161_agnews_0"


@pytest.fixture(scope="module")
def raw_texts():
    return {
        task: load_source(DatasetConfig(source="sae_probes", task=task), task)["text"].unique()
        for task in (QQP, AGNEWS)
    }


def test_excluded_texts_never_reach_the_corpus(raw_texts):
    # Exclude all but 30 QQP texts and all but 80 AG News texts.
    rng = np.random.default_rng(0)
    kept = {
        task: set(rng.choice(raw_texts[task].to_list(), n, replace=False))
        for task, n in ((QQP, 30), (AGNEWS, 80))
    }
    exclude = {t for task, texts in raw_texts.items() for t in texts if t not in kept[task]}
    cfg = CorpusConfig(tasks=[QQP, AGNEWS], max_texts_per_task=50, eval_fraction=0.2)
    df = prepare_corpus(cfg, exclude, seed=0)
    assert not set(df["text"]) & exclude
    by_task = {task: set(part["text"]) for (task,), part in df.group_by(["label_name"])}
    assert by_task[QQP] == kept[QQP]  # fewer than the cap are left: every one is taken
    assert len(by_task[AGNEWS]) == 50 and by_task[AGNEWS] <= kept[AGNEWS]


@pytest.fixture(scope="module")
def corpus():
    cfg = CorpusConfig(tasks=[QQP, AGNEWS], max_texts_per_task=200, eval_fraction=0.25)
    return cfg, prepare_corpus(cfg, set(), seed=3)


def test_corpus_ids_and_texts_are_unique_and_labels_name_the_task(corpus):
    _, df = corpus
    assert df.height == 400
    assert df["id"].n_unique() == df.height and df["text"].n_unique() == df.height
    assert df["id"].str.starts_with("corpus:").all()
    assert dict(df.select("label_name", "label").unique().iter_rows()) == {QQP: 0, AGNEWS: 1}
    assert set(df["domain"]) == {"corpus"}


def test_corpus_holds_out_the_configured_share_of_each_task(corpus):
    cfg, df = corpus
    assert set(df["split"]) == {"train", "test"}
    for (task,), part in df.group_by(["label_name"]):
        share = (part["split"] == "test").mean()
        assert share == pytest.approx(cfg.eval_fraction, abs=0.02), task


def test_corpus_is_a_function_of_its_seed(corpus):
    cfg, df = corpus
    assert prepare_corpus(cfg, set(), seed=3).equals(df)
    other = prepare_corpus(cfg, set(), seed=4)
    assert set(other["text"]) != set(df["text"])


def test_no_eval_fraction_puts_every_text_in_train():
    cfg = CorpusConfig(tasks=[QQP], max_texts_per_task=20, eval_fraction=0.0)
    df = prepare_corpus(cfg, set(), seed=0)
    assert df.height == 20 and set(df["split"]) == {"train"}
    assert df.filter(pl.col("label_name") != QQP).is_empty()
