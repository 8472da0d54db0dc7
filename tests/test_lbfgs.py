"""The batched L-BFGS runs scikit-learn's lbfgs fits, many at once."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from saeprobe.config import ProbeConfig
from saeprobe.probes import lbfgs
from saeprobe.probes.methods import FitContext, fit_method
from saeprobe.probes.validation import select_logistic


def badly_scaled_task(n=120, d=12, seed=0):
    """Columns on scales from 0.1 to 100, as raw hidden states have: L-BFGS needs many
    iterations, so where it stops matters."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.logspace(-1, 2, d)
    y = (X[:, :3].sum(1) / 30 + rng.standard_normal(n) > 0).astype(int)
    return X, y


def sklearn_fit(X, y, C, max_iter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=C, max_iter=max_iter).fit(X, y)


def assert_same_steps(solution, b: int, ref, max_iter: int) -> None:
    """Problem b took the reference's iterations and stands where it does: to 1e-9 of the
    largest weight after 20 iterations, 1e-5 after 50."""
    assert solution.iterations[b] == ref.n_iter_[0]
    scale = np.abs(ref.coef_[0]).max()
    tol = (1e-9 if max_iter <= 20 else 1e-5) * scale
    np.testing.assert_allclose(solution.coef[b], ref.coef_[0], rtol=0, atol=tol)
    assert solution.intercept[b] == pytest.approx(ref.intercept_[0], abs=tol)


@pytest.mark.parametrize("max_iter", [3, 20, 50])
def test_each_problem_takes_scikit_learns_lbfgs_steps(max_iter):
    """Step for step: the same iterations, and weights equal to 1e-9 after 20 iterations,
    1e-5 after 50 (C = 1e-3 has converged by then). Beyond that, on a problem this badly
    conditioned, rounding differences grow (the next test)."""
    X, y = badly_scaled_task()
    Cs = np.array([1e-3, 1.0, 1e3])
    rows = np.ones((len(y), len(Cs)), dtype=bool)
    solution = lbfgs.solve(X, np.repeat(y[:, None], 3, 1), rows, Cs, max_iter=max_iter)
    for b, C in enumerate(Cs):
        ref = sklearn_fit(X, y, C, max_iter)
        assert_same_steps(solution, b, ref, max_iter)


def test_after_many_iterations_the_weights_stay_close_to_scikit_learns():
    X, y = badly_scaled_task()
    Cs = np.array([1.0, 1e3])
    rows = np.ones((len(y), len(Cs)), dtype=bool)
    solution = lbfgs.solve(X, np.repeat(y[:, None], 2, 1), rows, Cs)
    assert solution.converged.all()
    for b, C in enumerate(Cs):
        ref = sklearn_fit(X, y, C, 1000)
        scale = np.abs(ref.coef_[0]).max()
        np.testing.assert_allclose(solution.coef[b], ref.coef_[0], rtol=0, atol=0.03 * scale)


@pytest.mark.parametrize("max_iter", [3, 20, 50])
def test_with_fewer_rows_than_columns_the_row_space_fits_take_scikit_learns_steps(max_iter):
    """Below d rows the problems are solved in coordinates of X's row space; the steps,
    the stopping test on max |g| and the weights mapped back are scikit-learn's."""
    X, y = badly_scaled_task(n=40, d=150, seed=5)
    rows = np.ones((len(y), 3), dtype=bool)
    rows[:10, 1] = False  # a problem on a subset of the rows stays in the same span
    Cs = np.array([1e-3, 1.0, 1e3])
    assert lbfgs._Objective(X, np.repeat(y[:, None], 3, 1), rows, Cs, None).basis is not None
    solution = lbfgs.solve(X, np.repeat(y[:, None], 3, 1), rows, Cs, max_iter=max_iter)
    for b, C in enumerate(Cs):
        ref = sklearn_fit(X[rows[:, b]], y[rows[:, b]], C, max_iter)
        assert_same_steps(solution, b, ref, max_iter)


def test_the_row_space_stopping_test_is_max_abs_gradient_on_the_columns():
    X, y = badly_scaled_task(n=30, d=90, seed=6)
    objective = lbfgs._Objective(X, y[:, None], np.ones((30, 1), dtype=bool), [1.0], None)
    rng = np.random.default_rng(0)
    # Gradients in row-space coordinates on every side of the bounds the test uses first.
    G = rng.standard_normal((400, objective.size)) * np.logspace(-6, -2, 400)[:, None]
    on_columns = G[:, :-1] @ objective.basis.T
    exact = np.maximum(np.abs(on_columns).max(1), np.abs(G[:, -1])) <= 1e-4
    np.testing.assert_array_equal(objective.gradient_small(G, 1e-4), exact)
    assert 0 < exact.sum() < len(exact)


def test_a_problem_reads_only_its_rows_targets_and_leading_columns():
    X, y = badly_scaled_task(seed=1)
    rows = np.ones((len(y), 3), dtype=bool)
    rows[:40, 0] = False  # problem 0: the last 80 rows
    targets = np.column_stack([y, 1 - y, y])  # problem 1: the other class positive
    features = np.array([12, 12, 5])
    solution = lbfgs.solve(X, targets, rows, np.ones(3), features=features, max_iter=30)
    for b, (X_ref, y_ref) in enumerate([(X[40:], y[40:]), (X, 1 - y), (X[:, :5], y)]):
        ref = sklearn_fit(X_ref, y_ref, 1.0, 30)
        scale = np.abs(ref.coef_[0]).max()
        coef = solution.coef[b, : features[b]]
        np.testing.assert_allclose(coef, ref.coef_[0], rtol=0, atol=1e-5 * scale)
    assert (solution.coef[2, 5:] == 0).all()


@pytest.mark.parametrize("n", [10, 60, 200])  # leave-2-out, 6-fold, one holdout
def test_the_batched_l2_sweep_chooses_and_fits_as_the_reference_does(n):
    X, y = badly_scaled_task(n=n, seed=2)
    Cs = np.logspace(-5, 5, 10)
    ours, ours_params, ours_val = select_logistic(X, y, Cs, "l2", 0, 2, l2_solver="batch")
    ref, ref_params, ref_val = select_logistic(X, y, Cs, "l2", 0, 2, l2_solver="lbfgs")
    assert ours_params == ref_params
    assert ours_val == pytest.approx(ref_val, abs=1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=2e-3)


def test_several_classes_are_one_vs_rest_as_scikit_learn_wraps_them():
    X, y = badly_scaled_task(n=150, seed=3)
    y = y + (X[:, 4] > 0)  # three classes
    Cs = np.logspace(-2, 2, 4)
    ours, ours_params, _ = select_logistic(X, y, Cs, "l2", 0, 3, l2_solver="batch")
    ref, ref_params, _ = select_logistic(X, y, Cs, "l2", 0, 3, l2_solver="lbfgs")
    assert ours_params == ref_params
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=2e-3)


@pytest.mark.parametrize("n", [10, 60, 200])
def test_the_batched_pca_search_chooses_and_fits_as_the_reference_does(n):
    X, y = badly_scaled_task(n=n, d=40, seed=4)
    fits = {}
    for solver in ("batch", "lbfgs"):
        ctx = FitContext(cfg=ProbeConfig(l2_solver=solver), seed=0, n_classes=2)
        fits[solver] = fit_method("pca", X[: n // 2], y[: n // 2], X[n // 2 :], ctx)
    assert fits["batch"].params == fits["lbfgs"].params
    assert fits["batch"].val_auc == pytest.approx(fits["lbfgs"].val_auc, abs=1e-6)
    np.testing.assert_allclose(fits["batch"].proba, fits["lbfgs"].proba, rtol=0, atol=1e-5)
