"""The sparse-probing protocol follows the paper's reference code (the `sae-probes` package's
utils_training.py, loaded from its file) and the paper's summaries."""

import importlib.util

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saeprobe.config import ProbeConfig, ProbeReportConfig, RegimeConfig
from saeprobe.data.sources import package_dir
from saeprobe.probes import methods
from saeprobe.probes.methods import FitContext, fit_method, rank_latents
from saeprobe.probes.schema import RESULT_SCHEMA
from saeprobe.probes.summary import quiver, summarize, with_labels
from saeprobe.probes.sweep import Representation, methods_for
from saeprobe.probes.validation import logistic
from saeprobe.regimes import sample


@pytest.fixture(scope="module")
def reference():
    path = package_dir("sae_probes", "pip install --no-deps sae-probes") / "utils_training.py"
    spec = importlib.util.spec_from_file_location("sae_probes_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blobs(n, d, seed, shift=1.0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    X = rng.normal(size=(n, d))
    X[:, :3] += shift * y[:, None]
    return X, y


def ours(method, X, y, n_train, seed, **cfg):
    ctx = FitContext(cfg=ProbeConfig(**cfg), seed=seed, n_classes=2)
    fit = fit_method(method, X[:n_train], y[:n_train], X[n_train:], ctx)
    return fit, roc_auc_score(y[n_train:], fit.proba[:, 1])


@pytest.mark.parametrize("n_train,seed", [(10, 0), (40, 1), (300, 2)])
def test_logistic_regression_chooses_the_references_C(reference, n_train, seed):
    X, y = blobs(n_train + 100, 20, seed, shift=0.5)
    fit, auc = ours("logreg_l2", X, y, n_train, seed)
    ref = reference.find_best_reg(X[:n_train], y[:n_train], X[n_train:], y[n_train:], seed=seed)
    assert fit.params["C"] == pytest.approx(ref.classifier.C)
    assert auc == pytest.approx(ref.metrics.test_auc, abs=2e-3)


@pytest.mark.parametrize("n_train,seed", [(40, 0), (300, 1)])
def test_l1_logistic_regression_is_the_references_saga_fit(reference, n_train, seed):
    X, y = blobs(n_train + 100, 20, seed, shift=0.3)
    X = np.abs(X) * 5  # unscaled, non-negative codes: saga stops short of the optimum here
    fit, auc = ours("logreg_l1", X, y, n_train, seed, l1_solver="saga")
    ref = reference.find_best_reg(
        X[:n_train], y[:n_train], X[n_train:], y[n_train:], penalty="l1", seed=seed
    )
    assert fit.params["C"] == pytest.approx(ref.classifier.C)
    assert auc == pytest.approx(ref.metrics.test_auc, abs=1e-9)


@pytest.mark.parametrize("n_train,seed", [(40, 0), (300, 1), (300, 2)])
def test_the_path_solver_tracks_the_references_saga_where_saga_stops_short(
    reference, n_train, seed
):
    X, y = blobs(n_train + 300, 30, seed, shift=0.4)
    X = np.abs(X) * 5  # saga hits its 1,000-epoch cap for every C above about 1 here
    fit, auc = ours("logreg_l1", X, y, n_train, seed, l1_solver="path")
    ref = reference.find_best_reg(
        X[:n_train], y[:n_train], X[n_train:], y[n_train:], penalty="l1", seed=seed
    )
    converged, converged_auc = ours("logreg_l1", X, y, n_train, seed, l1_solver="liblinear")
    assert abs(auc - ref.metrics.test_auc) <= 0.01
    # closer to saga than the L1 optimum is: the budget penalty is what makes it so
    assert abs(auc - ref.metrics.test_auc) <= abs(converged_auc - ref.metrics.test_auc) + 1e-3


def test_liblinear_solves_the_l1_problem_with_an_unpenalized_intercept():
    X, y = blobs(400, 10, 0, shift=0.5)
    y = (y & (np.arange(400) % 4 == 0)).astype(int)  # 1 positive in 8: a large intercept
    # A strong penalty zeroes every weight; an unpenalized intercept is then the log-odds
    # of the positive share (saga stops after a few epochs short of it here).
    strong = logistic(0.02, "l1", 0, 2, l1_solver="liblinear").fit(X, y)
    assert not strong.coef_.any()
    assert strong.intercept_[0] == pytest.approx(np.log(y.mean() / (1 - y.mean())), abs=0.02)
    # A weak penalty leaves most weights non-zero: the solution saga converges to.
    weak = logistic(0.5, "l1", 0, 2, l1_solver="liblinear").fit(X, y)
    saga = LogisticRegression(C=0.5, l1_ratio=1.0, solver="saga", max_iter=100_000, tol=1e-8)
    saga.fit(X, y)
    assert np.count_nonzero(weak.coef_) > 5
    assert weak.intercept_[0] == pytest.approx(saga.intercept_[0], abs=0.02)
    assert np.abs(weak.coef_ - saga.coef_).max() < 0.002


def test_c_ties_go_to_the_largest_c():
    X, y = blobs(12, 5, 0, shift=6.0)  # separable: every C scores 1.0 on every fold
    fit, _ = ours("logreg_l2", X, y, 10, 0)
    assert fit.params["C"] == pytest.approx(1e5)


@pytest.mark.parametrize("n_train,seed", [(10, 0), (50, 1), (200, 2)])
def test_knn_matches_find_best_knn(reference, n_train, seed):
    X, y = blobs(n_train + 100, 20, seed)
    fit, auc = ours("knn", X, y, n_train, seed)
    ref = reference.find_best_knn(X[:n_train], y[:n_train], X[n_train:], y[n_train:], 1, seed)
    assert fit.params["n_neighbors"] == ref.classifier.n_neighbors
    assert auc == pytest.approx(ref.metrics.test_auc, abs=1e-9)


@pytest.mark.parametrize("n_train,seed", [(10, 0), (60, 1), (200, 2)])
def test_pca_matches_find_best_pcareg(reference, n_train, seed):
    X, y = blobs(n_train + 100, 40, seed)  # small enough for the reference's exact PCA
    fit, auc = ours("pca", X, y, n_train, seed)
    ref = reference.find_best_pcareg(X[:n_train], y[:n_train], X[n_train:], y[n_train:], seed=seed)
    assert fit.params["n_components"] == ref.classifier.n_features_in_
    assert auc == pytest.approx(ref.metrics.test_auc, abs=1e-4)


def test_xgboost_draws_and_chooses_the_references_points(reference):
    X, y = blobs(160, 10, 3)
    fit, auc = ours("xgboost", X, y, 60, 3)
    ref = reference.find_best_xgboost(X[:60], y[:60], X[60:], y[60:], seed=3)
    chosen = ref.classifier.get_params()
    for key, value in fit.params.items():
        assert value == pytest.approx(float(chosen[key]), rel=1e-5), key
    assert auc == pytest.approx(ref.metrics.test_auc, abs=0.01)


def test_mlp_draws_the_references_configuration(reference):
    X, y = blobs(120, 10, 4)
    fit, auc = ours("mlp", X, y, 60, 4)
    ref = reference.find_best_mlp(X[:60], y[:60], X[60:], y[60:], seed=4)
    chosen = ref.classifier.get_params()
    assert tuple(fit.params["hidden_layer_sizes"]) == chosen["hidden_layer_sizes"]
    assert fit.params["alpha"] == pytest.approx(chosen["alpha"], rel=1e-5)
    assert fit.params["learning_rate_init"] == pytest.approx(chosen["learning_rate_init"])
    assert auc == pytest.approx(ref.metrics.test_auc, abs=0.01)


@pytest.mark.parametrize("solver", ["saga", "liblinear"])
def test_the_l1_probe_is_sparse(solver):
    X, y = blobs(200, 50, 0, shift=2.0)
    model = logistic(0.05, "l1", 0, 2, l1_solver=solver).fit(X, y)
    assert (model.coef_ == 0).mean() > 0.5  # an L2 fit would leave no exact zeros


def test_top_k_ranks_continuous_codes_then_fits_l1_on_binarized_kept_latents(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    X = np.zeros((80, 4))
    X[:, 0] = rng.uniform(0.5, 0.9, 80) + 3.0 * y  # best on continuous codes, always > 0
    X[:, 1] = (y == 1) * 1.5 + (y == 0) * rng.uniform(0, 0.9, 80)  # best once binarized > 1
    X[:, 2] = rng.uniform(0, 2, 80)
    seen = {}

    def spy(X_fit, y_fit, Cs, penalty, seed, n_classes, l1_solver, l2_solver):
        seen.update(X=X_fit, penalty=penalty, solver=l1_solver)
        return real(X_fit, y_fit, Cs, penalty, seed, n_classes, l1_solver, l2_solver)

    real = methods.select_logistic
    monkeypatch.setattr(methods, "select_logistic", spy)
    ctx = FitContext(cfg=ProbeConfig(binarize_threshold=1.0), seed=0, n_classes=2)
    fit = fit_method("sae_top1_bin", sp.csr_matrix(X), y, sp.csr_matrix(X), ctx)
    assert fit.params["latents"] == [0] == rank_latents(X, y)[:1].tolist()
    assert seen["penalty"] == "l1" and seen["solver"] == "path"  # the default L1 solver
    assert np.array_equal(seen["X"][:, 0], (X[:, 0] > 1.0).astype(float))
    fit_method("sae_top1", sp.csr_matrix(X), y, sp.csr_matrix(X), ctx)
    assert seen["penalty"] == "l1" and np.array_equal(seen["X"][:, 0], X[:, 0])


def test_imbalance_training_size_is_the_same_at_every_share():
    y = np.array([1] * 150 + [0] * 450)
    train_pool, test_pool = np.arange(0, 600, 2), np.arange(1, 600, 2)
    cfg = RegimeConfig(seeds=1, levels=[0.05, 0.5, 0.95], train_size=1024)
    sizes = set()
    for level in cfg.levels:
        s = sample(
            "imbalance",
            level,
            cfg,
            y,
            train_pool=train_pool,
            test_pool=test_pool,
            ood_pool=np.array([], int),
            seed=0,
        )
        share = y[s.train].mean()
        assert share == pytest.approx(level, abs=0.015)  # ceil, as the reference rounds
        sizes.add((len(s.train), len(s.test)))
    # 75 positives fill 78 examples at 95%; 225 negatives fill 236 at 5%.
    assert sizes == {(78, 78)}


def rows(table, level=None, regime="normal"):
    """A results table from (dataset, seed, layer, representation, method, val_auc,
    roc_auc) tuples."""
    keys = ("test_dataset", "seed", "layer", "representation", "method", "val_auc", "roc_auc")
    full = [
        {key: None for key in RESULT_SCHEMA}
        | dict(zip(keys, row, strict=True))
        | {"regime": regime, "level": level, "status": "ok", "pooling": "last"}
        | {"pooling_comparison": False, "train_dataset": row[0]}
        for row in table
    ]
    return pl.DataFrame(full, schema=RESULT_SCHEMA)


def test_quiver_and_best_probes_never_mix_levels():
    results = pl.concat(
        [
            # Two examples: the SAE probe scores 1.0 in validation by luck.
            rows(
                [
                    ("a", 0, 6, "hidden", "logreg_l2", 0.5, 0.60),
                    ("a", 0, 6, "sae_pretrained", "sae_top16", 1.0, 0.55),
                ],
                level=2.0,
                regime="scarcity",
            ),
            # 256 examples: the baseline is better in validation and on test.
            rows(
                [
                    ("a", 0, 6, "hidden", "logreg_l2", 0.95, 0.93),
                    ("a", 0, 6, "sae_pretrained", "sae_top16", 0.90, 0.88),
                ],
                level=256.0,
                regime="scarcity",
            ),
        ]
    )
    metrics = summarize(results, n_boot=20, seed=0)["scarcity"]
    small = metrics["levels"]["2"]["paper"]
    large = metrics["levels"]["256"]["paper"]
    assert small["quiver"]["sae_picked_share"] == 1.0
    assert large["quiver"]["sae_picked_share"] == 0.0
    assert large["quiver"]["with_sae_auc"] == pytest.approx(0.93)
    assert large["datasets"]["a"]["best_sae"]["probe"] == "L6/sae_pretrained/sae_top16"
    assert large["datasets"]["a"]["sae_minus_baseline"] == pytest.approx(0.88 - 0.93)
    mean = metrics["mean_over_levels"]["paper"]
    assert mean["quiver"]["sae_picked_share"] == pytest.approx(0.5)
    assert mean["best_baseline_mean_auc"] == pytest.approx((0.60 + 0.93) / 2)


def test_sae_probes_win_quiver_ties():
    table = rows(
        [
            ("a", 0, 6, "hidden", "logreg_l2", 0.9, 0.80),
            ("a", 0, 6, "sae_pretrained", "sae_top16", 0.9, 0.70),
        ]
    )
    assert quiver(with_labels(table))["sae_picked_share"] == 1.0


def test_the_paper_quiver_takes_its_layer_baselines_and_k_the_wide_one_everything():
    table = rows(
        [
            ("a", 0, 6, "hidden", "logreg_l2", 0.80, 0.80),
            ("a", 0, 12, "hidden", "logreg_l2", 0.99, 0.99),  # another layer
            ("a", 0, 6, "hidden", "tree", 0.98, 0.98),  # not one of the paper's baselines
            ("a", 0, 6, "sae_pretrained", "sae_top4", 0.97, 0.97),  # not one of its k
            ("a", 0, 6, "sae_finetuned", "sae_top16", 0.96, 0.96),  # not its SAE
            ("a", 0, 6, "sae_pretrained", "sae_top16", 0.70, 0.70),
        ]
    )
    cfg = ProbeReportConfig(quiver_layer=6, quiver_sae_k=[16], quiver_saes=["pretrained"])
    level = summarize(table, n_boot=20, seed=0, cfg=cfg)["normal"]["levels"]["default"]
    assert level["paper"]["quiver"]["baselines_auc"] == pytest.approx(0.80)
    assert level["paper"]["datasets"]["a"]["best_sae"]["probe"] == "L6/sae_pretrained/sae_top16"
    assert level["all_probes"]["quiver"]["baselines_auc"] == pytest.approx(0.99)


def test_binarized_probes_and_compared_poolings_run_in_the_normal_regime_only():
    cfg = ProbeConfig(sae_k=[1, 2], sae_methods=["sae_topk", "sae_topk_bin"])
    sae = Representation(6, "sae_pretrained", np.zeros((1, 1)), "last")
    normal, scarcity = RegimeConfig(), RegimeConfig(levels=[2], sae_k=[16])
    assert methods_for(sae, cfg, "normal", normal) == [
        "sae_top1",
        "sae_top2",
        "sae_top1_bin",
        "sae_top2_bin",
    ]
    assert methods_for(sae, cfg, "scarcity", scarcity) == ["sae_top16"]
    compared = Representation(6, "hidden", np.zeros((1, 1)), "mean", comparison=True)
    cfg = ProbeConfig(baselines=["logreg_l2", "knn"], compare_methods=["logreg_l2"])
    assert methods_for(compared, cfg, "normal", normal) == ["logreg_l2"]
    assert methods_for(compared, cfg, "scarcity", scarcity) == []


def test_mosaic_probes_run_on_their_features_in_the_normal_regime_only():
    rep = Representation(6, "sae_pretrained", np.zeros((1, 1)), "top20>1", True, mosaic=True)
    cfg = ProbeConfig()
    assert methods_for(rep, cfg, "normal", RegimeConfig()) == ["mosaic_linear", "mosaic_tree"]
    assert methods_for(rep, cfg, "noise", RegimeConfig(levels=[0.1])) == []


@pytest.mark.parametrize("method", ["mosaic_linear", "mosaic_tree"])
def test_mosaic_classifiers_search_their_grid_and_weight_classes(method):
    rng = np.random.default_rng(0)
    y = (np.arange(200) % 5 == 0).astype(int)  # 20% positives
    X = (rng.random((200, 30)) < 0.2).astype(float)
    X[:, 0] = y  # one latent marks the class
    ctx = FitContext(cfg=ProbeConfig(), seed=0, n_classes=2)
    fit = fit_method(method, sp.csr_matrix(X[:150]), y[:150], sp.csr_matrix(X[150:]), ctx)
    grid = ProbeConfig().grids[method]
    assert set(fit.params) == set(grid)
    assert roc_auc_score(y[150:], fit.proba[:, 1]) == 1.0 and fit.val_auc == 1.0
    if method == "mosaic_linear":
        model = methods._make_mosaic_linear(fit.params, ctx)
        assert model.class_weight == "balanced"
