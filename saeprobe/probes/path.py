"""L1 logistic regression for a whole C grid, every validation fold and every class at once:
one batched proximal-gradient (FISTA) solve in place of one saga run per fit.

The reference fits its L1 probes with scikit-learn's saga, capped at 1,000 epochs
(`sae_probes.utils_training.find_best_reg`). On unscaled SAE codes saga stops at that cap
for every C above about 1, short of the L1 optimum: its weights keep growing with more
epochs. Stopping gradient descent early acts like an L2 penalty of 1 / (time run), the
steps times the step size (Ali, Kolter and Tibshirani 2019, "A continuous-time view of
early stopping for least squares"). So `saga_budget_l2` adds the L2 penalty that saga's
1,000 epochs at its own step size imply, and the solver finds the optimum of

    mean log-loss + lam1 * |w|_1 + lam2 / 2 * |w|^2,   lam1 = 1 / (C n), lam2 = 1 / (epochs n step)

which tracks the reference's probes (bench/probes.py measures how closely) at a fraction of
its time. With `budget_epochs=None` lam2 is 0 and the solver finds the L1 optimum itself.

The problem is solved in standardized coordinates v = s * w (columns centered and scaled by
their standard deviation; the intercept is free, so this is a change of variables, not of
the problem), where the gradient steps are well conditioned; the penalties, still on w,
become per-column weights in the proximal step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigsh
from scipy.special import expit


@dataclass(frozen=True)
class Problems:
    """B binary problems on the rows of one matrix: problem b fits `targets[:, b]` (0/1) on
    the rows where `rows[:, b]` is true, with penalties lam1[b] and lam2[b]."""

    targets: np.ndarray  # (n, B) of 0/1
    rows: np.ndarray  # (n, B) bool
    lam1: np.ndarray  # (B,)
    lam2: np.ndarray  # (B,)


@dataclass(frozen=True)
class Solution:
    coef: np.ndarray  # (B, d) weights on the original columns
    intercept: np.ndarray  # (B,)
    iterations: int
    converged: np.ndarray  # (B,) bool


def saga_step(X, rows: np.ndarray) -> float:
    """The step saga takes on these rows with an L1 penalty and an intercept
    (`sklearn.linear_model._sag.get_auto_step_size`: 1 / (2 L), L = (max |x|^2 + 1) / 4)."""
    squared = _row_norms_squared(X)[rows]
    return 2.0 / (float(squared.max()) + 1.0)


def saga_budget_l2(X, rows: np.ndarray, epochs: int = 1000) -> float:
    """The L2 penalty (on the mean loss) equivalent to `epochs` of saga on these rows: one
    over the time it runs, n * epochs steps of `saga_step`."""
    return 1.0 / (epochs * int(rows.sum()) * saga_step(X, rows))


def _row_norms_squared(X) -> np.ndarray:
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(1)).ravel()
    return np.einsum("ij,ij->i", X, X)


class _Standardized:
    """Z = (X - mean) / scale as products, without densifying a sparse X."""

    def __init__(self, X):
        self.X = X
        n = X.shape[0]
        mean = np.asarray(X.mean(0)).ravel()
        square_mean = np.asarray(X.multiply(X).mean(0) if sp.issparse(X) else (X * X).mean(0))
        std = np.sqrt(np.maximum(square_mean.ravel() - mean**2, 0.0))
        self.constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        self.scale = np.where(self.constant, 1.0, std)
        self.mean = mean
        self.n = n

    def times(self, V: np.ndarray) -> np.ndarray:
        """Z @ V for V (d, B)."""
        Vs = V / self.scale[:, None]
        return np.asarray(self.X @ Vs) - self.mean @ Vs

    def transposed_times(self, R: np.ndarray) -> np.ndarray:
        """Z.T @ R for R (n, B)."""
        XtR = np.asarray(self.X.T @ R)
        return (XtR - self.mean[:, None] * R.sum(0)) / self.scale[:, None]

    def largest_eigenvalue(self) -> float:
        """The largest eigenvalue of [Z, 1].T [Z, 1], by Lanczos on its products."""
        d = self.X.shape[1]

        def product(v: np.ndarray) -> np.ndarray:
            v = v.reshape(-1, 1)
            z = self.times(v[:d]) + v[d]
            return np.concatenate([self.transposed_times(z), z.sum(0, keepdims=True)]).ravel()

        if d + 1 <= 64:  # small: exactly
            eye = np.eye(d + 1)
            gram = np.column_stack([product(eye[:, i]) for i in range(d + 1)])
            return float(np.linalg.eigvalsh(gram)[-1])
        operator = LinearOperator((d + 1, d + 1), matvec=product, dtype=np.float64)
        start = np.ones(d + 1)  # a fixed start vector keeps the result deterministic
        return float(eigsh(operator, k=1, which="LA", v0=start, tol=1e-6)[0][0])


def solve(X, problems: Problems, max_iter: int = 5000, tol: float = 1e-5) -> Solution:
    """Minimize, for every problem b at once, the mean log-loss over its rows plus
    lam1[b] |w|_1 + lam2[b] / 2 |w|^2 (intercept unpenalized), by FISTA with adaptive restart
    (O'Donoghue and Candes 2015). A problem has converged when its gradient mapping, the
    step a proximal-gradient iteration would still take divided by the step size, is below
    `tol` in every coordinate.

    A column constant over the rows (an SAE latent that never fires on them, most of a
    wide SAE's on one task) keeps a zero weight, so the solve runs on the others alone and
    the zeros are put back: the same problem, without carrying those columns through every
    iteration. (Its step size, from the smaller matrix's largest eigenvalue, agrees with
    the full one's to the eigenvalue solver's tolerance.)"""
    Z = _Standardized(X)
    if Z.constant.any() and not Z.constant.all():
        varying = np.flatnonzero(~Z.constant)
        inner = solve(X[:, varying], problems, max_iter, tol)
        coef = np.zeros((inner.coef.shape[0], X.shape[1]))
        coef[:, varying] = inner.coef
        return Solution(coef, inner.intercept, inner.iterations, inner.converged)
    Y = problems.targets.astype(np.float64)
    counts = problems.rows.sum(0)
    if (counts == 0).any():
        raise ValueError("a problem has no rows")
    weights = problems.rows / counts  # each problem's mean over its own rows
    # Every problem's loss is a weighted mean over rows, so its Hessian is at most
    # 1/4 [Z, 1].T diag(weights) [Z, 1] <= 1/4 max(weights) [Z, 1].T [Z, 1].
    lipschitz = 0.25 * Z.largest_eigenvalue() * float(weights.max())
    step = 1.0 / lipschitz
    inverse_scale = np.where(Z.constant, 0.0, 1.0 / Z.scale)[:, None]
    threshold = step * problems.lam1[None, :] * inverse_scale  # (d, B)
    threshold = np.where(Z.constant[:, None], np.inf, threshold)
    shrink = 1.0 + step * problems.lam2[None, :] * inverse_scale**2
    d, B = X.shape[1], Y.shape[1]
    V, b = np.zeros((d, B)), _null_intercept(Y, problems.rows)
    converged = np.zeros(B, dtype=bool)
    live = np.arange(B)  # the problems still iterating: a converged one leaves the batch
    V_look, b_look, momentum = V.copy(), b.copy(), np.ones(B)
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        Yl, Wl, Tl, Sl = Y[:, live], weights[:, live], threshold[:, live], shrink[:, live]
        residual = (expit(Z.times(V_look) + b_look) - Yl) * Wl
        U = V_look - step * Z.transposed_times(residual)
        V_next = np.sign(U) * np.maximum(np.abs(U) - Tl, 0.0) / Sl
        b_next = b_look - step * residual.sum(0)
        mapping = np.maximum(np.abs(V_look - V_next).max(0), np.abs(b_look - b_next)) / step
        V_prev, b_prev = V[:, live], b[live]
        V[:, live], b[live] = V_next, b_next
        done = mapping <= tol
        converged[live[done]] = True
        if done.all():
            break
        # Restart the momentum of a problem whose step went against its last move.
        against = (V_look - V_next) * (V_next - V_prev)
        against = against.sum(0) + (b_look - b_next) * (b_next - b_prev) > 0
        momentum = np.where(against, 1.0, momentum)
        momentum_next = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        beta = np.where(against, 0.0, (momentum - 1.0) / momentum_next)
        V_look = V_next + beta * (V_next - V_prev)
        b_look = b_next + beta * (b_next - b_prev)
        keep = ~done
        live, momentum = live[keep], momentum_next[keep]
        V_look, b_look = V_look[:, keep], b_look[keep]
    coef = (V * inverse_scale).T
    intercept = b - coef @ Z.mean
    return Solution(coef, intercept, iteration, converged)


def _null_intercept(Y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The optimal intercept with every weight zero: the log-odds of each problem's rows."""
    share = (Y * rows).sum(0) / rows.sum(0)
    share = np.clip(share, 1e-12, 1 - 1e-12)
    return np.log(share / (1 - share))
