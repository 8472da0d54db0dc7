"""Probe inputs are row-aligned with the prepared table, whatever order the stores use."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from saeprobe.config import ProbeConfig
from saeprobe.errors import ConfigError
from saeprobe.probes.inputs import load_representations, mosaic_representations
from saeprobe.store import FeatureFile, PooledWriter, write_feature_file

IDS = ["d0", "d1", "d2"]
STORE_ORDER = ["d2", "d0", "d1"]  # the stores sort documents by length, not by table order


@pytest.fixture
def stores(tmp_path):
    pooled = PooledWriter(tmp_path / "pooled.parquet", [4], ["mean", "max"], 2)
    # Row i of the stores belongs to document STORE_ORDER[i] and holds its number.
    numbers = np.array([[int(d[1:]), 0] for d in STORE_ORDER], dtype=np.float32)
    pooled.append(STORE_ORDER, {"L4_mean": numbers, "L4_max": 10 * numbers})
    pooled.close()
    codes = sp.csr_matrix(np.array([[2.0, 0.5], [0.0, 1.5], [3.0, 0.0]], dtype=np.float32))
    write_feature_file(
        tmp_path / "L4.h5",
        STORE_ORDER,
        {
            "pretrained": ("f0", {"mean": codes, "max": 10 * codes}),
            "finetuned": ("f1", {"mean": 2 * codes, "max": 20 * codes}),
        },
        task_docs={"finetuned": 7},
    )
    return tmp_path


def load(stores, **cfg):
    cfg = {
        "hidden_pooling": "mean",
        "sae_pooling": "mean",
        "compare_poolings": [],
        "mosaic_methods": [],
    } | cfg
    prepared = pl.DataFrame({"id": IDS, "text": ["zero", "one", "two"]})
    return load_representations(
        prepared,
        pooled_path=stores / "pooled.parquet",
        feature_path=lambda layer: stores / f"L{layer}.h5",
        layers=[4],
        cfg=ProbeConfig(**cfg),
    )


def test_every_representation_follows_the_prepared_tables_row_order(stores):
    reps = {(r.layer, r.name): r.X for r in load(stores)}
    assert len(reps) == 4
    assert reps[(-1, "text")].tolist() == ["zero", "one", "two"]
    assert reps[(4, "hidden")][:, 0].tolist() == [0, 1, 2]
    # d0 is the store's row 1, d1 row 2, d2 row 0.
    assert reps[(4, "sae_pretrained")].toarray().tolist() == [[0, 1.5], [3, 0], [2, 0.5]]
    assert reps[(4, "sae_finetuned")].toarray().tolist() == [[0, 3], [6, 0], [4, 1]]


def test_sae_inputs_carry_the_number_of_task_texts_their_sae_was_fine_tuned_on(stores):
    docs = {r.name: r.task_docs for r in load(stores, compare_poolings=["max"])}
    assert docs == {"text": 0, "hidden": 0, "sae_pretrained": 0, "sae_finetuned": 7}


def test_compared_poolings_are_loaded_beside_the_main_one_and_marked(stores):
    reps = load(stores, compare_poolings=["mean", "max"])
    found = {(r.name, r.pooling): r.comparison for r in reps if r.layer == 4}
    assert found == {
        ("hidden", "mean"): False,
        ("hidden", "max"): True,
        ("sae_pretrained", "mean"): False,
        ("sae_pretrained", "max"): True,
        ("sae_finetuned", "mean"): False,
        ("sae_finetuned", "max"): True,
    }
    hidden_max = next(r.X for r in reps if r.name == "hidden" and r.pooling == "max")
    assert hidden_max[:, 0].tolist() == [0, 10, 20]


def test_a_document_missing_from_a_store_is_named(stores):
    prepared = pl.DataFrame({"id": [*IDS, "d9"], "text": ["a", "b", "c", "d"]})
    with pytest.raises(ConfigError, match=r"pooled.parquet: 1 document\(s\) missing.*d9"):
        load_representations(
            prepared,
            pooled_path=stores / "pooled.parquet",
            feature_path=lambda layer: stores / f"L{layer}.h5",
            layers=[4],
            cfg=ProbeConfig(hidden_pooling="mean", sae_pooling="mean", compare_poolings=[]),
        )


def test_a_pooling_the_features_lack_is_an_error_not_a_silent_skip(stores):
    with pytest.raises(ConfigError, match="no 'last' pooling of 'pretrained'"):
        load(stores, hidden_pooling="max", sae_pooling="last")


def test_mosaic_features_are_top_n_counts_above_each_threshold(tmp_path):
    counts = sp.csr_matrix(np.array([[0, 1, 3], [2, 0, 1]], dtype=np.float32))
    write_feature_file(
        tmp_path / "L4.h5", ["a", "b"], {"pretrained": ("f0", {"top20": counts, "mean": counts})}
    )
    cfg = ProbeConfig(saes=["pretrained"], mosaic_top_n=[20], mosaic_thresholds=[0.0, 1.0])
    reps = mosaic_representations(
        FeatureFile(tmp_path / "L4.h5"), np.array([1, 0]), 4, "pretrained", cfg
    )
    assert [(r.pooling, r.kind, r.comparison) for r in reps] == [
        ("top20>0", "mosaic", True),
        ("top20>1", "mosaic", True),
    ]
    assert reps[0].X.toarray().tolist() == [[1, 0, 1], [0, 1, 1]]  # rows follow `rows`
    assert reps[1].X.toarray().tolist() == [[1, 0, 0], [0, 0, 1]]
    assert (
        mosaic_representations(
            FeatureFile(tmp_path / "L4.h5"),
            np.array([0, 1]),
            4,
            "pretrained",
            ProbeConfig(mosaic_methods=[]),
        )
        == []
    )
