import numpy as np
import polars as pl
import pytest

from saeprobe.probes.schema import RESULT_SCHEMA
from saeprobe.probes.summary import (
    binarized_bars,
    bootstrap_ci,
    compare_best,
    layer_curve,
    level_curve,
    quiver,
    sae_k_curve,
    with_labels,
)

COLUMNS = ("test_dataset", "layer", "representation", "method", "seed", "roc_auc", "val_auc")


def results(rows, regime="normal", level=None):
    """A results table from (test_dataset, layer, representation, method, seed, roc_auc,
    val_auc) tuples, all fitted; a trailing "skipped" marks a row that was not."""
    full = []
    for row in rows:
        status = row[7] if len(row) > 7 else "ok"
        full.append(
            {key: None for key in RESULT_SCHEMA}
            | dict(zip(COLUMNS, row[:7], strict=True))
            | {"train_dataset": row[0], "regime": regime, "level": level, "status": status}
        )
    return pl.DataFrame(full, schema=RESULT_SCHEMA)


def table(df, *key):
    """{key tuple: mean roc_auc} of a curve."""
    return {tuple(row[k] for k in key): row["roc_auc"] for row in df.iter_rows(named=True)}


def test_bootstrap_ci_is_seeded_and_contains_the_mean():
    values = np.array([0.61, 0.7, 0.74, 0.8, 0.93])
    lo, hi = bootstrap_ci(values, n_boot=500, seed=0)
    assert lo < values.mean() < hi
    assert hi - lo < values.max() - values.min()
    assert bootstrap_ci(values, 500, seed=0) == [lo, hi]
    assert bootstrap_ci(values, 500, seed=1) != [lo, hi]


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci(np.array([0.7]), 100, 0) == [0.7, 0.7]
    assert bootstrap_ci(np.array([]), 100, 0) == [None, None]
    assert bootstrap_ci(np.array([np.nan, np.nan]), 100, 0) == [None, None]
    with_nan = bootstrap_ci(np.array([0.6, np.nan, 0.9, 0.8]), 100, 0)
    assert with_nan == bootstrap_ci(np.array([0.6, 0.9, 0.8]), 100, 0)


def test_level_curve_averages_over_datasets_and_seeds_per_probe_and_level():
    df = pl.concat(
        [
            results(
                [
                    ("a", 2, "hidden", "logreg_l2", 0, 0.6, 0.6),
                    ("a", 2, "hidden", "logreg_l2", 1, 0.7, 0.6),
                    ("b", 2, "hidden", "logreg_l2", 0, 0.8, 0.6),
                    ("a", 2, "hidden", "logreg_l2", 2, 0.0, None, "skipped"),
                    ("a", -1, "text", "tfidf", 0, 0.5, 0.5),
                ],
                regime="scarcity",
                level=10.0,
            ),
            results([("a", 2, "hidden", "logreg_l2", 0, 0.9, 0.9)], "scarcity", level=100.0),
            results([("a", 2, "hidden", "logreg_l2", 0, 0.1, 0.9)], "imbalance", level=10.0),
        ]
    )
    curve = level_curve(df, "scarcity")
    assert table(curve, "series", "level") == {
        ("L2/hidden/logreg_l2", 10.0): pytest.approx(0.7),
        ("L2/hidden/logreg_l2", 100.0): pytest.approx(0.9),
        ("text/tfidf", 10.0): pytest.approx(0.5),
    }


def test_layer_curve_has_one_series_per_representation_and_method():
    df = pl.concat(
        [
            results(
                [
                    ("a", 1, "hidden", "knn", 0, 0.6, 0.6),
                    ("b", 1, "hidden", "knn", 0, 0.8, 0.6),
                    ("a", 3, "hidden", "knn", 0, 0.9, 0.6),
                    ("a", 3, "hidden", "knn", 1, 0.0, 0.6, "failed"),
                    ("a", 3, "sae_pre", "sae_top4", 0, 0.75, 0.6),
                    ("a", -1, "text", "tfidf", 0, 0.5, 0.5),
                ]
            ),
            results([("a", 1, "hidden", "knn", 0, 0.1, 0.1)], regime="scarcity", level=10.0),
        ]
    )
    assert table(layer_curve(df), "series", "layer") == {
        ("hidden/knn", 1): pytest.approx(0.7),
        ("hidden/knn", 3): pytest.approx(0.9),
        ("sae_pre/sae_top4", 3): pytest.approx(0.75),
    }


def test_sae_k_curve_reads_k_from_the_method_name():
    df = results(
        [
            ("a", 2, "sae_pre", "sae_top4", 0, 0.6, 0.6),
            ("b", 2, "sae_pre", "sae_top4", 0, 0.7, 0.6),
            ("a", 2, "sae_pre", "sae_top16", 0, 0.8, 0.6),
            ("a", 2, "sae_pre", "sae_top16", 1, 0.2, 0.6, "skipped"),
            ("a", 4, "sae_ft", "sae_top16", 0, 0.9, 0.6),
            ("a", 2, "sae_pre", "sae_l1", 0, 0.99, 0.9),
            ("a", 2, "hidden", "logreg_l2", 0, 0.99, 0.9),
        ]
    )
    curve = sae_k_curve(df)
    assert curve["k"].dtype == pl.Int64
    assert table(curve, "series", "k") == {
        ("L2/sae_pre", 4): pytest.approx(0.65),
        ("L2/sae_pre", 16): pytest.approx(0.8),
        ("L4/sae_ft", 16): pytest.approx(0.9),
    }


def test_binarized_bars_take_the_best_mean_probe_per_dataset_and_feature_kind():
    df = results(
        [
            ("a", 2, "sae_pre", "sae_top4", 0, 0.6, 0.6),
            ("a", 2, "sae_pre", "sae_top4", 1, 0.8, 0.6),  # mean 0.7
            ("a", 2, "sae_pre", "sae_top16", 0, 0.65, 0.6),
            ("a", 2, "sae_pre", "sae_top16", 1, 1.0, 0.6, "skipped"),
            ("a", 2, "sae_pre", "sae_top4_bin", 0, 0.55, 0.6),
            ("b", 2, "sae_pre", "sae_top4", 0, 0.9, 0.6),
            ("b", 2, "hidden", "logreg_l2", 0, 0.99, 0.6),
        ]
    )
    assert table(binarized_bars(df), "setting") == {
        ("a/binarized",): pytest.approx(0.55),
        ("a/continuous",): pytest.approx(0.7),
        ("b/continuous",): pytest.approx(0.9),
    }


def test_quiver_picks_by_validation_auc_and_ignores_unfitted_rows():
    df = results(
        [
            # a/0: the SAE probe has the best validation AUC, the kNN the best test AUC.
            ("a", 1, "hidden", "logreg_l2", 0, 0.80, 0.90),
            ("a", 1, "hidden", "knn", 0, 0.95, 0.85),
            ("a", 1, "sae_pre", "sae_top4", 0, 0.70, 0.92),
            ("a", 1, "sae_pre", "sae_top8", 0, 0.99, 0.99, "skipped"),
            # a/1: a baseline wins; a row without a validation AUC is not a candidate.
            ("a", 1, "hidden", "logreg_l2", 1, 0.60, 0.80),
            ("a", 1, "sae_pre", "sae_top4", 1, 0.90, 0.70),
            ("a", 1, "sae_pre", "sae_top16", 1, 0.99, None),
        ]
    )
    assert quiver(with_labels(df)) == {
        "settings": 2,
        "sae_picked_share": 0.5,
        "baselines_auc": pytest.approx((0.80 + 0.60) / 2),
        "with_sae_auc": pytest.approx((0.70 + 0.60) / 2),
    }


def test_compare_best_chooses_by_validation_auc_and_pairs_seeds():
    df = results(
        [
            ("a", 1, "hidden", "logreg_l2", 0, 0.70, 0.90),
            ("a", 1, "hidden", "logreg_l2", 1, 0.74, 0.90),
            ("a", 1, "hidden", "knn", 0, 0.95, 0.80),  # better test AUC, worse validation
            ("a", 1, "hidden", "knn", 1, 0.95, 0.80),
            ("a", 1, "hidden", "knn", 2, 0.95, 0.99, "skipped"),
            ("a", 1, "sae_pre", "sae_top4", 0, 0.80, 0.85),
            ("a", 1, "sae_pre", "sae_top4", 1, 0.94, 0.85),
            ("a", 1, "sae_pre", "sae_top16", 0, 0.99, 0.70),
            ("a", 1, "sae_pre", "sae_top16", 1, 0.99, 0.70),
        ]
    )
    out = compare_best(with_labels(df), n_boot=200, seed=0)
    base, sae = out["best_baseline"], out["best_sae"]
    assert (base["probe"], base["val_auc"], base["roc_auc"]) == (
        "L1/hidden/logreg_l2",
        pytest.approx(0.90),
        pytest.approx(0.72),
    )
    assert (sae["probe"], sae["roc_auc"]) == ("L1/sae_pre/sae_top4", pytest.approx(0.87))
    assert base["ci95"] == bootstrap_ci(np.array([0.70, 0.74]), 200, 0)
    # Paired differences 0.10 and 0.20: t = 3 on one degree of freedom.
    assert out["sae_minus_baseline"] == pytest.approx(0.15)
    assert out["paired_t_p"] == pytest.approx(1 - 2 / np.pi * np.arctan(3.0))


def test_compare_best_without_sae_probes_has_no_comparison():
    df = results([("a", 1, "hidden", "knn", 0, 0.8, 0.8), ("a", 1, "hidden", "knn", 1, 0.9, 0.8)])
    out = compare_best(with_labels(df), n_boot=50, seed=0)
    assert set(out) == {"best_baseline"}
    assert out["best_baseline"]["roc_auc"] == pytest.approx(0.85)


def test_the_probe_report_leaves_the_other_stages_plots_in_place(tmp_path):
    from saeprobe.config import ProbeReportConfig
    from saeprobe.probes.report import write_probe_report

    rows = [("a", 1, "hidden", "logreg_l2", s, 0.8 + s / 100, 0.8) for s in range(2)]
    rows += [("a", 1, "sae_pretrained", "sae_top4", s, 0.7, 0.7) for s in range(2)]
    results(rows).write_parquet(tmp_path / "a.parquet")
    plots = tmp_path / "plots"
    other = plots / "selfreg" / "a-L1" / "accuracy.csv"  # another stage's plot
    other.parent.mkdir(parents=True)
    other.write_text("series,lambda,accuracy\n")
    write_probe_report(
        [tmp_path / "a.parquet"],
        results_path=tmp_path / "results.parquet",
        metrics_path=tmp_path / "metrics.json",
        plots_dir=plots,
        n_boot=20,
        seed=0,
        cfg=ProbeReportConfig(quiver_layer=1),
    )
    assert other.read_text() == "series,lambda,accuracy\n"
    assert (plots / "scarcity.csv").exists() and (plots / "layers.csv").exists()
