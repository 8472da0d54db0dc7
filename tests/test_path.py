"""The batched L1 path solver finds the optima scikit-learn converges to, problem by problem."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saeprobe.probes import path
from saeprobe.probes.validation import proba_full, select_l1_path, validation_splits

CS = np.logspace(-2, 2, 5)


def codes(n=300, d=24, seed=0):
    """Non-negative, unevenly scaled columns, as SAE codes are."""
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.normal(size=(n, d)) * rng.uniform(0.1, 4.0, d) - 0.5, 0.0)
    signal = X[:, :4].sum(1) + rng.normal(size=n)
    return X, (signal > np.median(signal)).astype(int)


def path_problems(y, Cs, lam2=0.0, rows=None):
    n = len(y)
    rows = np.ones(n, dtype=bool) if rows is None else rows
    return path.Problems(
        targets=np.repeat(y[:, None], len(Cs), 1),
        rows=np.repeat(rows[:, None], len(Cs), 1),
        lam1=1.0 / (np.asarray(Cs) * rows.sum()),
        lam2=np.full(len(Cs), lam2),
    )


def test_with_no_l2_it_finds_the_l1_optimum():
    X, y = codes()
    solution = path.solve(X, path_problems(y, CS), tol=1e-8, max_iter=50_000)
    assert solution.converged.all()
    for j, C in enumerate(CS):
        exact = LogisticRegression(
            C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=1e4, tol=1e-10, max_iter=10**5
        ).fit(X, y)
        assert np.abs(solution.coef[j] - exact.coef_[0]).max() < 1e-3, C
        assert (solution.coef[j] == 0).sum() >= (np.abs(exact.coef_[0]) < 1e-6).sum() - 1


def test_with_l2_it_finds_the_elastic_net_optimum():
    X, y = codes(seed=1)
    lam2 = 1e-3
    solution = path.solve(X, path_problems(y, CS, lam2), tol=1e-9, max_iter=50_000)
    n = len(y)
    for j, C in enumerate(CS):
        l1, l2 = 1.0 / C, lam2 * n  # the same objective on the summed loss
        exact = LogisticRegression(
            C=1.0 / (l1 + l2), l1_ratio=l1 / (l1 + l2), solver="saga", tol=1e-12, max_iter=10**5
        ).fit(X, y)
        assert np.abs(solution.coef[j] - exact.coef_[0]).max() < 1e-4, C
        if exact.coef_.any():  # (with no weight saga leaves its intercept short of 0 here)
            assert solution.intercept[j] == pytest.approx(exact.intercept_[0], abs=1e-4)


def test_each_problem_of_a_batch_is_solved_as_if_alone():
    X, y = codes(seed=2)
    rows = np.arange(len(y)) % 3 != 0  # one problem on a subset of the rows
    batch = path.Problems(
        targets=np.column_stack([y, 1 - y, y]),
        rows=np.column_stack([np.ones(len(y), bool), np.ones(len(y), bool), rows]),
        lam1=np.array([0.01, 0.002, 0.001]),
        lam2=np.array([0.0, 1e-3, 1e-4]),
    )
    together = path.solve(X, batch, tol=1e-8, max_iter=50_000)
    for b in range(3):
        alone = path.solve(
            X,
            path.Problems(
                batch.targets[:, [b]], batch.rows[:, [b]], batch.lam1[[b]], batch.lam2[[b]]
            ),
            tol=1e-8,
            max_iter=50_000,
        )
        assert np.abs(together.coef[b] - alone.coef[0]).max() < 1e-5
    assert np.abs(together.coef[0] + together.coef[1]).max() > 0.01  # distinct penalties


def test_sparse_input_gives_the_dense_solution():
    X, y = codes(seed=3)
    dense = path.solve(X, path_problems(y, CS, 1e-4))
    sparse = path.solve(sp.csr_matrix(X), path_problems(y, CS, 1e-4))
    assert np.abs(dense.coef - sparse.coef).max() < 1e-10
    assert np.abs(dense.intercept - sparse.intercept).max() < 1e-10


def test_a_constant_column_gets_no_weight_and_a_strong_penalty_leaves_the_log_odds():
    X, y = codes(seed=4)
    X[:, 5] = 7.0
    solution = path.solve(X, path_problems(y, [1e-4, 10.0]))
    assert (solution.coef[:, 5] == 0).all()
    assert not solution.coef[0].any()  # C = 1e-4: every weight zero ...
    assert solution.intercept[0] == pytest.approx(np.log(y.mean() / (1 - y.mean())), abs=1e-6)
    assert np.count_nonzero(solution.coef[1]) > 10  # ... C = 10: most are not


def test_latents_that_never_fire_leave_the_solution_of_the_others_unchanged():
    X, y = codes(seed=5)
    wide = np.zeros((len(y), 3 * X.shape[1]))  # two of every three latents never fire
    wide[:, ::3] = X
    for matrix in (wide, sp.csr_matrix(wide)):
        solution = path.solve(matrix, path_problems(y, CS, 1e-4))
        alone = path.solve(X, path_problems(y, CS, 1e-4))
        assert solution.coef.shape == (len(CS), wide.shape[1])
        assert not solution.coef[:, 1::3].any() and not solution.coef[:, 2::3].any()
        assert np.abs(solution.coef[:, ::3] - alone.coef).max() < 1e-10
        assert np.abs(solution.intercept - alone.intercept).max() < 1e-10


def test_the_saga_budget_penalty_is_one_over_sagas_running_time():
    X = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    rows = np.array([True, True, False, True])
    # max squared norm 25 -> saga's step 2 / 26; 3 rows, 10 epochs
    assert path.saga_step(X, rows) == pytest.approx(2 / 26)
    assert path.saga_budget_l2(X, rows, epochs=10) == pytest.approx(1 / (10 * 3 * 2 / 26))


def test_the_l1_path_probe_fits_several_classes_one_vs_rest():
    rng = np.random.default_rng(5)
    y = np.arange(240) % 3
    X = np.abs(rng.normal(size=(240, 12))) + 2.0 * np.eye(12)[y][:, :12]
    model, params, val = select_l1_path(X, y, list(CS), seed=0, n_classes=3)
    proba = proba_full(model, X, 3)
    assert np.allclose(proba.sum(1), 1.0)
    assert (proba.argmax(1) == y).mean() > 0.9
    assert params["C"] in CS and val > 0.9


@pytest.mark.parametrize("n", [60, 300])
def test_the_l1_path_probe_chooses_c_by_the_validation_auc_of_each_folds_own_fit(n):
    X, y = codes(n=n, d=10, seed=2)
    Cs = list(np.logspace(-3, 3, 7))
    _, params, val = select_l1_path(X, y, Cs, seed=0, n_classes=2)
    splits = validation_splits(y, 0)
    mean = []
    for C in sorted(Cs):
        fold_scores = []
        for train, test in splits:
            rows = np.zeros(n, dtype=bool)
            rows[train] = True
            lam2 = path.saga_budget_l2(X, rows)
            alone = path.solve(X, path_problems(y, [C], lam2, rows=rows))
            margin = X[test] @ alone.coef[0] + alone.intercept[0]
            fold_scores.append(roc_auc_score(y[test], margin))
        mean.append(np.mean(fold_scores))
    best = len(mean) - 1 - int(np.argmax(mean[::-1]))  # ties to the largest C
    assert params["C"] == pytest.approx(sorted(Cs)[best])
    assert val == pytest.approx(mean[best], abs=1e-6)


def _fista_only(monkeypatch):
    monkeypatch.setattr(path, "NEWTON_MAX_COLUMNS", 0)


def test_newton_steps_and_fista_alone_reach_the_same_optimum(monkeypatch):
    X, y = codes(seed=3, d=12)
    problems = path_problems(y, CS, lam2=1e-3)
    assert path.newton_fits(*X.shape)
    with_newton = path.solve(X, problems, tol=1e-8, max_iter=50_000)
    _fista_only(monkeypatch)
    alone = path.solve(X, problems, tol=1e-8, max_iter=50_000)
    assert with_newton.converged.all() and alone.converged.all()
    assert np.abs(with_newton.coef - alone.coef).max() < 1e-5
    assert np.abs(with_newton.intercept - alone.intercept).max() < 1e-5
    assert ((with_newton.coef == 0) == (alone.coef == 0)).mean() > 0.95


def test_newton_steps_solve_a_narrow_problem_in_far_fewer_iterations(monkeypatch):
    X, y = codes(seed=4, d=24)
    problems = path_problems(y, CS)
    with_newton = path.solve(X, problems, tol=1e-7, max_iter=50_000)
    _fista_only(monkeypatch)
    alone = path.solve(X, problems, tol=1e-7, max_iter=50_000)
    assert with_newton.converged.all() and alone.converged.all()
    assert with_newton.iterations < 20 < 100 < alone.iterations


def test_when_every_line_search_fails_fista_still_finishes_the_solve(monkeypatch):
    X, y = codes(seed=5, d=10)
    problems = path_problems(y, CS)
    expected = path.solve(X, problems, tol=1e-8, max_iter=50_000)
    monkeypatch.setattr(path, "LINE_SEARCH_HALVINGS", 0)
    stalled = path.solve(X, problems, tol=1e-8, max_iter=50_000)
    assert stalled.converged.all()
    assert np.abs(stalled.coef - expected.coef).max() < 1e-5
