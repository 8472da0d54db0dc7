import polars as pl

from saeprobe.config import DatasetConfig
from saeprobe.data.prepare import prepare_dataset


def _write(tmp_path, texts, labels):
    path = tmp_path / "d.csv"
    pl.DataFrame({"text": texts, "label": labels}).write_csv(path)
    return DatasetConfig(source="file", path=str(path), test_size=0.25)


def test_split_is_stratified(tmp_path):
    labels = [0] * 80 + [1] * 20
    cfg = _write(tmp_path, [f"text {i}" for i in range(100)], labels)
    df = prepare_dataset("d", cfg, seed=1)
    test = df.filter(pl.col("split") == "test")
    assert test.height == 25
    assert test["label"].sum() == 5  # 20% positives, as in the whole


def test_split_is_deterministic_by_seed(tmp_path):
    cfg = _write(tmp_path, [f"text {i}" for i in range(100)], [0, 1] * 50)
    a = prepare_dataset("d", cfg, seed=3)
    b = prepare_dataset("d", cfg, seed=3)
    c = prepare_dataset("d", cfg, seed=4)
    assert a.equals(b)
    assert not a["split"].equals(c["split"])


def test_duplicate_texts_never_straddle_train_and_test(tmp_path):
    texts = [f"text {i % 30}" for i in range(120)]  # every text four times
    cfg = _write(tmp_path, texts, [(i % 30) % 2 for i in range(120)])
    df = prepare_dataset("d", cfg, seed=0)
    train = set(df.filter(pl.col("split") == "train")["text"])
    test = set(df.filter(pl.col("split") == "test")["text"])
    assert not train & test
    assert df.height == 30


def test_texts_with_conflicting_labels_are_dropped(tmp_path):
    texts = ["same"] * 2 + [f"t{i}" for i in range(20)]
    cfg = _write(tmp_path, texts, [0, 1] + [0, 1] * 10)
    df = prepare_dataset("d", cfg, seed=0)
    assert "same" not in df["text"].to_list()


def test_cap_keeps_class_shares(tmp_path):
    cfg = _write(tmp_path, [f"text {i}" for i in range(1000)], [0] * 700 + [1] * 300)
    cfg = DatasetConfig(**{**cfg.__dict__, "max_examples": 100})
    df = prepare_dataset("d", cfg, seed=0)
    assert df.height == 100
    assert df["label"].sum() == 30


def test_ids_are_stable_when_the_cap_changes(tmp_path):
    base = _write(tmp_path, [f"text {i}" for i in range(200)], [0, 1] * 100)
    small = prepare_dataset("d", DatasetConfig(**{**base.__dict__, "max_examples": 50}), 0)
    full = prepare_dataset("d", base, 0)
    texts = dict(zip(full["id"], full["text"], strict=True))
    assert all(texts[i] == t for i, t in zip(small["id"], small["text"], strict=True))
