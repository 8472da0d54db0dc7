import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saeprobe import config
from saeprobe.config import ProbeConfig, RegimeConfig, check_grids
from saeprobe.errors import ConfigError, Infeasible
from saeprobe.features import pool_latents
from saeprobe.probes.methods import FitContext, fit_method, rank_latents
from saeprobe.probes.schema import RESULT_SCHEMA
from saeprobe.probes.summary import quiver, summarize, with_labels
from saeprobe.probes.sweep import FitFailed, Representation, plan, run_sweep
from saeprobe.probes.validation import (
    auc,
    binary_aucs,
    select_logistic,
    validation_splits,
)


def ctx(n_classes=2, **cfg):
    return FitContext(cfg=ProbeConfig(**cfg), seed=0, n_classes=n_classes)


def blobs(n=200, d=10, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d))
    X[:, 0] += shift * y
    return X, y


def test_validation_scheme_follows_the_paper():
    y10 = np.array([0, 1] * 5)
    assert len(validation_splits(y10, 0)) == 25  # leave-2-out pairs with one of each class
    y60 = np.array([0, 1] * 30)
    splits = validation_splits(y60, 0)
    assert len(splits) == 6 and all(len(va) == 10 for _, va in splits)
    y500 = np.array([0, 1] * 250)
    ((tr, va),) = validation_splits(y500, 0)
    assert np.array_equal(va, np.arange(400, 500))  # the last 100 rows, as the reference


def test_c_selection_matches_fresh_fits_by_hand():
    X, y = blobs(n=300, d=20, shift=0.6)
    Cs = [1e-4, 1e-2, 1.0, 100.0]
    _, params, val = select_logistic(X, y, Cs, "l2", seed=0, n_classes=2)
    tr, va = np.arange(240), np.arange(240, 300)
    scores = []
    for C in Cs:
        model = LogisticRegression(C=C, max_iter=1000).fit(X[tr], y[tr])
        scores.append(roc_auc_score(y[va], model.predict_proba(X[va])[:, 1]))
    assert params["C"] == Cs[int(np.argmax(scores))]
    assert val == pytest.approx(max(scores), abs=1e-3)


@pytest.mark.parametrize("layout", [sp.csr_matrix, np.asarray])
def test_top_latents_are_ranked_after_scaling_by_mean_nonzero_activation(layout):
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    X = np.zeros((8, 3))
    X[:, 0] = [0, 0, 0, 0, 1, 1, 1, 1]  # perfectly separating, small
    X[:, 1] = [100, 0, 100, 0, 100, 100, 100, 0]  # large, barely separating
    X[:, 2] = [2, 2, 2, 2, 2, 2, 2, 2]  # constant
    assert rank_latents(layout(X), y).tolist() == [0, 1, 2]


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_dense_and_sparse_codes_rank_latents_as_the_reference_formula(n_classes, signed):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, size=120)
    X = np.maximum(rng.normal(size=(120, 300)) * rng.uniform(0.1, 5.0, 300) - 1.0, 0.0)
    if signed:  # hidden states, or an SAE without a ReLU, have negative values too
        X *= rng.choice([-1.0, 1.0], size=X.shape)
    X[:, :5] += 2.0 * (y[:, None] == 1)
    fires = (X != 0).sum(0)
    scale = np.abs(X).sum(0) / (fires + 1e-6) + 1e-6
    pairs = [(X[y == c].mean(0), X[y != c].mean(0)) for c in range(n_classes)]
    pairs = pairs if n_classes > 2 else pairs[1:]
    score = sum(np.abs(inside - outside) / scale for inside, outside in pairs)
    expected = np.argsort(-score, kind="stable")[:50]
    assert rank_latents(X, y)[:50].tolist() == expected.tolist()
    assert rank_latents(sp.csr_matrix(X), y)[:50].tolist() == expected.tolist()


def test_latents_that_fire_on_more_rows_than_a_16_bit_count_holds_are_counted_exactly():
    # 70,000 rows. Latent 0 fires on all of them (1 in class 0, 2 in class 1: score 1 / 1.5);
    # latent 1 on half (3 or 1: score 1 / 2); latent 2 never. A count of latent 0 wrapped
    # at 65,536 would inflate its mean nonzero activation 16-fold and rank it second.
    n = 70_000
    y = np.arange(n) % 2
    X = np.zeros((n, 3))
    X[:, 0] = 1.0 + y
    X[::4, 1], X[1::4, 1] = 3.0, 1.0
    assert rank_latents(X, y).tolist() == [0, 1, 2]
    assert rank_latents(sp.csr_matrix(X), y).tolist() == [0, 1, 2]


def test_top_k_probe_uses_exactly_k_latents():
    X, y = blobs(n=120, d=30, shift=3.0)
    fit = fit_method(
        "sae_top2",
        sp.csr_matrix(np.abs(X)),
        y,
        sp.csr_matrix(np.abs(X)),
        ctx(c_grid_size=3),
    )
    assert len(fit.params["latents"]) == 2


def test_k_larger_than_the_width_is_an_infeasible_setting():
    X, y = blobs(n=40, d=5)
    with pytest.raises(Infeasible, match="larger than the SAE width 5"):
        fit_method("sae_top16", sp.csr_matrix(X), y, sp.csr_matrix(X), ctx())


def test_an_unknown_method_name_in_params_is_refused_with_a_suggestion():
    params = {"probe": {**ProbeConfig().__dict__, "baselines": ["logreg_l2", "logreg_l3"]}}
    with pytest.raises(ConfigError, match="'probe.baselines' has 'logreg_l3'; did you mean"):
        config.probe_config(params)
    params = {"regimes": {"scarcity": {"seeds": 1, "levels": [4], "methods": ["logreg_l22"]}}}
    with pytest.raises(ConfigError, match="regimes.scarcity.methods"):
        config.regime_configs(params)


def test_a_search_space_with_the_wrong_keys_is_refused():
    grids = {**ProbeConfig().grids, "knn": {"k": [1, 3]}}
    with pytest.raises(ConfigError, match=r"grids.knn' must give \['max_neighbors', 'points'\]"):
        check_grids(ProbeConfig(grids=grids))
    grids = {**ProbeConfig().grids, "pca": {"max_components": 0, "points": 10}}
    with pytest.raises(ConfigError, match="'probe.grids.pca.max_components' must be a positive"):
        check_grids(ProbeConfig(grids=grids))


def test_searches_take_their_space_from_params():
    X, y = blobs(n=160, d=8, shift=3.0)
    grids = {
        **ProbeConfig().grids,
        "tree": {"max_depth": [3]},
        "knn": {"max_neighbors": 1, "points": 10},
    }
    fit = fit_method("tree", X[:120], y[:120], X[120:], ctx(grids=grids))
    assert fit.params == {"max_depth": 3}
    fit = fit_method("knn", X[:120], y[:120], X[120:], ctx(grids=grids))
    assert fit.params == {"n_neighbors": 1}


def test_top_n_count_pooling_by_hand():
    z = torch.tensor([[3.0, 1.0, 0.0, 2.0], [0.0, 5.0, 4.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    doc = torch.tensor([0, 0, 1])
    out = pool_latents(z, doc, 2, ["topn", "sum", "max", "last", "mean"], top_n=[2])
    assert out["top2"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    assert out["sum"].tolist() == [[3, 6, 4, 2], [1, 0, 0, 0]]
    assert out["max"].tolist() == [[3, 5, 4, 2], [1, 0, 0, 0]]
    assert out["last"].tolist() == [[0, 5, 4, 0], [1, 0, 0, 0]]
    assert out["mean"].tolist() == [[1.5, 3, 2, 1], [1, 0, 0, 0]]


@pytest.mark.parametrize(
    "method", ["logreg_l2", "logreg_l1", "pca", "knn", "xgboost", "mlp", "tree"]
)
def test_every_baseline_learns_an_easy_task(method):
    X, y = blobs(n=160, d=8, shift=3.0)
    fit = fit_method(method, X[:120], y[:120], X[120:], ctx(c_grid_size=4))
    assert roc_auc_score(y[120:], fit.proba[:, 1]) > 0.85


MULTICLASS_METHODS = [
    *["logreg_l2", "logreg_l1", "pca", "knn", "xgboost", "mlp", "tree"],
    *["sae_l1", "sae_top4", "sae_top4_bin", "mosaic_linear", "mosaic_tree"],
]


@pytest.mark.parametrize("method", MULTICLASS_METHODS)
def test_every_method_scores_every_class_of_a_multiclass_task(method):
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    X = rng.random(size=(150, 6)) + 3 * np.eye(3, 6)[y]  # non-negative, as SAE codes are
    fit = fit_method(method, X[:120], y[:120], X[120:], ctx(3, c_grid_size=3))
    assert fit.proba.shape == (30, 3) and (fit.proba.argmax(1) == y[120:]).mean() > 0.8


def test_tfidf_reads_raw_text():
    texts = np.asarray(
        [("win cash now " if i % 2 else "see you at lunch ") + str(i) for i in range(60)],
        dtype=object,
    )
    y = np.arange(60) % 2
    fit = fit_method("tfidf", texts[:40], y[:40], texts[40:], ctx())
    assert roc_auc_score(y[40:], fit.proba[:, 1]) == 1.0


def tiny_sweep(timed: bool = False, **cfg):
    X, y = blobs(n=240, d=12, shift=2.0)
    prepared = pl.DataFrame(
        {
            "label": y,
            "split": ["train"] * 180 + ["test"] * 60,
            "text": [f"text {i}" for i in range(240)],
        }
    )
    reps = [
        Representation(3, "hidden", X),
        Representation(3, "sae_finetuned", sp.csr_matrix(np.maximum(X, 0)), task_docs=180),
    ]
    settings = dict(
        n_jobs=1,
        c_grid_size=3,
        sae_k=[2, 4],
        baselines=["logreg_l2", "knn"],
        sae_methods=["sae_topk"],
    )
    cfg = ProbeConfig(**(settings | cfg))
    regimes = {
        "normal": RegimeConfig(seeds=2),
        "scarcity": RegimeConfig(seeds=1, levels=[4, 999]),
        "shift": RegimeConfig(seeds=1),
    }
    results, seconds = run_sweep("toy", prepared, reps, cfg, regimes, base_seed=0)
    return (results, seconds) if timed else results


def shareable_sweep(regimes: dict, **cfg):
    X, y = blobs(n=300, d=8, shift=1.5)
    X[240:, 1] += 1.0  # the shifted split differs from the test split
    prepared = pl.DataFrame({"label": y, "split": ["train"] * 180 + ["test"] * 60 + ["ood"] * 60})
    reps = [
        Representation(3, "hidden", X),
        Representation(3, "sae_pretrained", sp.csr_matrix(np.maximum(X, 0))),
    ]
    settings = dict(n_jobs=1, c_grid_size=3, sae_k=[2], baselines=["logreg_l2", "knn", "pca"])
    probe = ProbeConfig(**(settings | cfg))
    return run_sweep("toy", prepared, reps, probe, regimes, base_seed=0)


def test_settings_with_the_same_training_sample_share_one_fit_and_score_as_if_apart():
    regimes = {
        "normal": RegimeConfig(seeds=2),
        "noise": RegimeConfig(seeds=1, levels=[0.0, 0.3]),
        "shift": RegimeConfig(seeds=2),
    }
    together, seconds = shareable_sweep(regimes)
    apart = pl.concat([shareable_sweep({name: rcfg})[0] for name, rcfg in regimes.items()])
    assert together.equals(apart)  # every row, in the same order
    ok = together.filter(pl.col("status") == "ok")
    assert set(ok["regime"]) == {"normal", "noise", "shift"}
    # The shift fits and the noise-free ones ran in the normal regime; 30% noise ran its own.
    assert all(seconds["by_method"][f"shift/{m}"] == 0.0 for m in ("logreg_l2", "knn", "pca"))
    assert seconds["by_method"]["noise/logreg_l2"] > 0.0
    noisy, clean = (
        ok.filter(pl.col("regime") == "noise", pl.col("level") == lv) for lv in (0.3, 0)
    )
    normal = ok.filter(
        pl.col("regime") == "normal", pl.col("seed") == 0, pl.col("method").is_in(clean["method"])
    )
    assert clean.select("method", "val_auc", "roc_auc").equals(
        normal.select("method", "val_auc", "roc_auc")
    )
    assert not noisy["val_auc"].equals(clean["val_auc"])


def test_a_regime_narrowed_to_other_data_sets_plans_nothing_for_this_one():
    X, y = blobs(n=240, d=6)
    split = np.array(["train"] * 180 + ["test"] * 60)
    reps = [Representation(3, "hidden", X)]
    cfg = ProbeConfig(n_jobs=1, baselines=["logreg_l2"], sae_methods=[])
    regimes = {
        "normal": RegimeConfig(seeds=1),
        "scarcity": RegimeConfig(seeds=1, levels=[20], datasets=["spam"]),
    }
    planned = {
        name: {job.setting.regime for job in plan(name, y, split, reps, cfg, regimes, 0)[0]}
        for name in ("spam", "bbc")
    }
    assert planned == {"spam": {"normal", "scarcity"}, "bbc": {"normal"}}


def test_sweep_timing_says_which_regime_kind_and_method_took_the_time():
    results, seconds = tiny_sweep(timed=True)
    ok = results.filter(pl.col("status") == "ok")
    ran = {f"{r}/{m}" for r, m in zip(ok["regime"], ok["method"], strict=True)}
    assert set(seconds["by_method"]) == ran
    assert set(seconds["by_kind"]) == {
        "normal/hidden",
        "normal/sae",
        "scarcity/hidden",
        "scarcity/sae",
    }
    assert all(value >= 0 for value in seconds["by_method"].values())
    total = sum(seconds["by_method"].values())
    assert total == pytest.approx(sum(seconds["by_kind"].values()), abs=0.01)


def test_results_table_has_the_documented_schema_and_reports_skips():
    results = tiny_sweep()
    assert dict(results.schema) == RESULT_SCHEMA
    ok = results.filter(pl.col("status") == "ok")
    assert set(ok["method"]) == {"logreg_l2", "knn", "sae_top2", "sae_top4"}
    assert ok.filter(pl.col("regime") == "normal").height == 2 * 4
    messages = results.filter(pl.col("status") == "skipped")["message"].to_list()
    assert any("the pool has 180" in m for m in messages)
    assert any("no shifted" in m for m in messages)
    top4 = ok.filter(pl.col("method") == "sae_top4")["params"].to_list()
    assert all(len(json.loads(p)["latents"]) == 4 for p in top4)
    # The fine-tuned SAE read all 180 training texts; at n = 4 its probe had 4 labels.
    docs = dict(ok.group_by("representation").agg(pl.col("sae_task_docs").unique()).iter_rows())
    assert docs == {"hidden": [0], "sae_finetuned": [180]}


def test_a_fit_that_raises_fails_the_sweep_naming_the_fit():
    bad_grids = {**ProbeConfig().grids, "tree": {"max_depth": [-1]}}
    with pytest.raises(FitFailed, match="probe hidden/tree at layer 3, regime normal"):
        tiny_sweep(grids=bad_grids, baselines=["logreg_l2", "tree"])


def test_allow_failures_records_a_failing_fit_and_runs_the_rest():
    bad_grids = {**ProbeConfig().grids, "tree": {"max_depth": [-1]}}
    results = tiny_sweep(grids=bad_grids, allow_failures=True, baselines=["logreg_l2", "tree"])
    failed = results.filter(pl.col("status") == "failed")
    assert set(failed["method"]) == {"tree"} and failed["message"][0].startswith("InvalidParam")
    assert results.filter((pl.col("method") == "logreg_l2") & (pl.col("status") == "ok")).height


def test_quiver_picks_by_validation_auc():
    rows = pl.DataFrame(
        {
            "test_dataset": ["a"] * 3 + ["b"] * 3,
            "seed": [0] * 6,
            "layer": [1] * 6,
            "representation": ["hidden", "hidden", "sae_x"] * 2,
            "method": ["logreg_l2", "knn", "sae_top4"] * 2,
            "val_auc": [0.9, 0.8, 0.95, 0.9, 0.7, 0.6],
            "roc_auc": [0.85, 0.9, 0.80, 0.88, 0.7, 0.99],
            "status": ["ok"] * 6,
            "pooling": ["last"] * 6,
            "pooling_comparison": [False] * 6,
        }
    )
    q = quiver(with_labels(rows))
    assert q == {
        "settings": 2,
        "sae_picked_share": 0.5,
        "baselines_auc": pytest.approx(0.865),
        "with_sae_auc": pytest.approx(0.84),
    }


def test_summary_compares_best_sae_with_best_baseline():
    metrics = summarize(tiny_sweep(), n_boot=50, seed=0)
    normal = metrics["normal"]["levels"]["default"]["all_probes"]["datasets"]["toy"]
    assert normal["best_baseline"]["probe"].startswith("L3/hidden/")
    assert normal["best_sae"]["probe"].startswith("L3/sae_finetuned/")
    lo, hi = normal["best_baseline"]["ci95"]
    assert lo <= normal["best_baseline"]["roc_auc"] <= hi
    assert metrics["scarcity"]["not_fitted"] >= 1


def test_a_product_grid_pairs_each_key_with_its_own_values():
    from saeprobe.probes.methods import grid_points

    points = grid_points({"n_neighbors": [1, 2], "a": [10]})
    assert points == [{"a": 10, "n_neighbors": 1}, {"a": 10, "n_neighbors": 2}]


def test_grid_values_must_be_non_empty_lists():
    grids = {**ProbeConfig().grids, "tree": {"max_depth": 4}}
    with pytest.raises(ConfigError, match="'probe.grids.tree.max_depth' must be a non-empty list"):
        check_grids(ProbeConfig(grids=grids))


@pytest.mark.parametrize("n", [56, 200])
def test_pca_and_knn_search_only_what_their_smallest_validation_fold_supports(n):
    # 6-fold at n = 56 trains on about 46; one holdout of 40 at n = 200 trains on 160.
    X, y = blobs(n=n + 40, d=300, shift=2.0)
    grids = {
        **ProbeConfig().grids,
        "pca": {"max_components": 250, "points": 10},
        "knn": {"max_neighbors": 250, "points": 10},
    }
    for method in ("pca", "knn"):
        fit = fit_method(method, X[:n], y[:n], X[n:], ctx(grids=grids))
        assert np.isfinite(fit.val_auc)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_auc_equals_scikit_learns_with_ties_and_several_classes(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=200)
    proba = rng.integers(0, 5, size=(200, 3)) / 4.0  # coarse scores: many ties
    macro = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(3)])
    assert auc(y, proba) == pytest.approx(macro, abs=1e-12)
    binary = (y > 0).astype(int)
    two = np.column_stack([1 - proba[:, 1], proba[:, 1]])
    assert auc(binary, two) == pytest.approx(roc_auc_score(binary, proba[:, 1]), abs=1e-12)
    assert np.isnan(auc(np.zeros(5, dtype=int), two[:5]))


def test_many_score_columns_get_scikit_learns_auc_each_in_one_ranking():
    rng = np.random.default_rng(3)
    positive = rng.random(90) < 0.3
    scores = rng.integers(0, 6, size=(90, 7)) / 5.0  # ties within every column
    expected = [roc_auc_score(positive, scores[:, j]) for j in range(7)]
    assert binary_aucs(positive, scores) == pytest.approx(expected, abs=1e-12)
