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
    """[Z, 1] with Z = (X - mean) / scale, the intercept's column of ones last, as products.
    A dense X is standardized once; a sparse one stays sparse (densifying a wide SAE's codes
    would cost more than the products)."""

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
        self.dense = (
            None if sp.issparse(X) else np.column_stack([(X - mean) / self.scale, np.ones(n)])
        )

    def times(self, V: np.ndarray) -> np.ndarray:
        """[Z, 1] @ V for V (d + 1, B)."""
        if self.dense is not None:
            return self.dense @ V
        Vs = V[:-1] / self.scale[:, None]
        return np.asarray(self.X @ Vs) - (self.mean @ Vs - V[-1])

    def transposed_times(self, R: np.ndarray) -> np.ndarray:
        """[Z, 1].T @ R for R (n, B)."""
        if self.dense is not None:
            return self.dense.T @ R
        total = R.sum(0)
        XtR = np.asarray(self.X.T @ R)
        return np.vstack([(XtR - self.mean[:, None] * total) / self.scale[:, None], total])

    def largest_eigenvalue(self) -> float:
        """The largest eigenvalue of [Z, 1].T [Z, 1]: from the Gram matrix where it is
        small, else by Lanczos on its products."""
        d = self.X.shape[1]
        exact_up_to = 512 if self.dense is not None else 64  # sparse products cost more
        if d + 1 <= exact_up_to:
            gram = self.transposed_times(self.times(np.eye(d + 1)))
            return float(np.linalg.eigvalsh(gram)[-1])

        def product(v: np.ndarray) -> np.ndarray:
            return self.transposed_times(self.times(v.reshape(-1, 1))).ravel()

        operator = LinearOperator((d + 1, d + 1), matvec=product, dtype=np.float64)
        start = np.ones(d + 1)  # a fixed start vector keeps the result deterministic
        return float(eigsh(operator, k=1, which="LA", v0=start, tol=1e-6)[0][0])


def solve(X, problems: Problems, max_iter: int = 5000, tol: float = 1e-5) -> Solution:
    """Minimize, for every problem b at once, the mean log-loss over its rows plus
    lam1[b] |w|_1 + lam2[b] / 2 |w|^2 (intercept unpenalized), by FISTA with adaptive restart
    (O'Donoghue and Candes 2015). A problem has converged when its gradient mapping, the
    step a proximal-gradient iteration would still take divided by the step size, is below
    `tol` in every coordinate; it then leaves the batch.

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
    counts = problems.rows.sum(0)
    if (counts == 0).any():
        raise ValueError("a problem has no rows")
    weights = problems.rows / counts  # each problem's mean over its own rows
    # Every problem's loss is a weighted mean over rows, so its Hessian is at most
    # 1/4 [Z, 1].T diag(weights) [Z, 1] <= 1/4 max(weights) [Z, 1].T [Z, 1].
    lipschitz = 0.25 * Z.largest_eigenvalue() * float(weights.max())
    step = 1.0 / lipschitz
    inverse_scale = np.where(Z.constant, 0.0, 1.0 / Z.scale)[:, None]
    # The proximal step's per-coordinate threshold and shrinkage; the intercept, the last
    # coordinate, is neither thresholded nor shrunk.
    threshold = step * problems.lam1[None, :] * inverse_scale  # (d, B)
    threshold = np.where(Z.constant[:, None], np.inf, threshold)
    threshold = np.vstack([threshold, np.zeros((1, len(counts)))])
    shrink = 1.0 + step * problems.lam2[None, :] * inverse_scale**2
    shrink = np.vstack([shrink, np.ones((1, len(counts)))])
    d, B = X.shape[1], len(counts)
    V = np.zeros((d + 1, B))
    V[d] = _null_intercept(problems.targets, problems.rows)
    converged = np.zeros(B, dtype=bool)
    # The problems still iterating, and their slices of everything the loop reads.
    live = np.arange(B)
    Y, W = problems.targets.astype(np.float64), weights
    T, T_low, S = threshold, -threshold, shrink
    V_now, V_look, momentum = V.copy(), V.copy(), np.ones(B)
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        residual = (expit(Z.times(V_look)) - Y) * W
        U = V_look - step * Z.transposed_times(residual)
        # Soft-thresholding, then the L2 shrinkage (maximum and minimum: np.clip's wrapper
        # costs more than the arithmetic on these small arrays).
        V_next = (U - np.minimum(np.maximum(U, T_low), T)) / S
        move = V_look - V_next
        done = np.abs(move).max(0) <= tol * step
        some_done = bool(done.any())
        if some_done:
            V[:, live[done]] = V_next[:, done]
            converged[live[done]] = True
            if done.all():
                break
        # Restart the momentum of a problem whose step went against its last move.
        change = V_next - V_now
        against = np.einsum("ij,ij->j", move, change) > 0
        momentum = np.where(against, 1.0, momentum)
        momentum_next = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        beta = np.where(against, 0.0, (momentum - 1.0) / momentum_next)
        V_look = V_next + beta * change
        V_now, momentum = V_next, momentum_next
        if some_done:
            keep = ~done
            live, momentum = live[keep], momentum[keep]
            V_now, V_look = V_now[:, keep], V_look[:, keep]
            Y, W, S = Y[:, keep], W[:, keep], S[:, keep]
            T, T_low = T[:, keep], T_low[:, keep]
    else:
        V[:, live] = V_now
    coef = (V[:d] * inverse_scale).T
    intercept = V[d] - coef @ Z.mean
    return Solution(coef, intercept, iteration, converged)


def _null_intercept(Y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The optimal intercept with every weight zero: the log-odds of each problem's rows."""
    share = (Y * rows).sum(0) / rows.sum(0)
    share = np.clip(share, 1e-12, 1 - 1e-12)
    return np.log(share / (1 - share))
