"""L1 logistic regression for a whole C grid, every validation fold and every class at once:
one batched solve (orthant-wise Newton steps on a top-k probe's few columns, proximal
gradient (FISTA) on more) in place of one saga run per fit.

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
become per-column weights (`_Penalties`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigsh


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


# The stopping tolerance on the gradient mapping in standardized coordinates. On the
# benchmark's top-k probes (bench/probes.py, six tasks, every regime) 1e-4 moved test AUCs
# by 0.0009 on average from 1e-5's at k = 128 (0.00006 at k = 16), left the mean |dAUC|
# against the reference's saga where it was, and made the fits 1.5 times faster at
# k = 128 (1.07 times at k = 16).
TOL = 1e-4

# Newton steps need every problem's Hessian, from (d + 1)^2 products of columns on n rows,
# and a (d + 1)-square solve: on the benchmark's top-k probes (bench/probes.py) they beat
# FISTA up to 32 columns (1.2x faster at k = 32) and lose from 64 (0.9x at k = 64, 0.87x at 128).
NEWTON_MAX_COLUMNS = 32
NEWTON_MAX_ENTRIES = 2_000_000  # the products' memory: 16 MB


def newton_fits(n: int, d: int) -> bool:
    """Whether `solve` takes Newton steps on n rows of d columns."""
    return d <= NEWTON_MAX_COLUMNS and (d + 1) ** 2 * n <= NEWTON_MAX_ENTRIES


class _Standardized:
    """[Z, 1] with Z = (X - mean) / scale, the intercept's column of ones last, as products.
    A dense X is standardized once, and so is a sparse one narrow enough for Newton steps
    (`newton_fits`); a wider sparse one stays sparse (densifying a wide SAE's codes would
    cost more than the products)."""

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
        self.dense = None
        if not sp.issparse(X) or newton_fits(n, X.shape[1]):
            dense = X.toarray() if sp.issparse(X) else X
            self.dense = np.column_stack([(dense - mean) / self.scale, np.ones(n)])

    def times(self, V: np.ndarray) -> np.ndarray:
        """[Z, 1] @ V for V (d + 1, B)."""
        if self.dense is not None:
            return self.dense @ V
        Vs = V[:-1] / self.scale[:, None]
        return np.asarray(self.X @ Vs) - (self.mean @ Vs - V[-1])

    @functools.cached_property
    def _negated(self) -> np.ndarray:
        return -self.dense

    def negated_times(self, V: np.ndarray) -> np.ndarray:
        """-[Z, 1] @ V, from a negated copy where Z is dense (FISTA's loop wants e^-z)."""
        return -self.times(V) if self.dense is None else self._negated @ V

    def negated_transposed_times(self, R: np.ndarray) -> np.ndarray:
        """-[Z, 1].T @ R."""
        return -self.transposed_times(R) if self.dense is None else self._negated.T @ R

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


def solve(X, problems: Problems, max_iter: int = 5000, tol: float = TOL) -> Solution:
    """Minimize, for every problem b at once, the mean log-loss over its rows plus
    lam1[b] |w|_1 + lam2[b] / 2 |w|^2 (intercept unpenalized). A problem has converged when
    its gradient mapping, the step a proximal-gradient iteration would still take divided
    by the step size, is below `tol` in every coordinate; it then leaves the batch.

    With few columns (a top-k probe's) orthant-wise Newton steps solve most problems in a
    dozen iterations (`_newton`); FISTA with adaptive restart (O'Donoghue and Candes 2015)
    solves the others, and every problem of a wide matrix, from where they stand. Both stop
    on the same test, so they find the same optimum to `tol`.

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
    d, B = X.shape[1], len(counts)
    # The penalties per coordinate of the standardized problem; the intercept, the last
    # coordinate, has none. (A constant column, left only when all are, gets an infinite
    # L1 penalty: its weight stays 0.)
    inverse_scale = np.where(Z.constant, 0.0, 1.0 / Z.scale)[:, None]
    l1 = np.where(Z.constant[:, None], np.inf, problems.lam1[None, :] * inverse_scale)
    penalties = _Penalties(
        l1=np.vstack([l1, np.zeros((1, B))]),
        l2=np.vstack([problems.lam2[None, :] * inverse_scale**2, np.zeros((1, B))]),
    )
    V = np.zeros((d + 1, B))
    V[d] = _null_intercept(problems.targets, problems.rows)
    Y = problems.targets.astype(np.float64)
    step = 1.0 / lipschitz
    converged, newton_steps = np.zeros(B, dtype=bool), 0
    if newton_fits(Z.n, d) and not Z.constant.any():
        V, converged, newton_steps = _newton(Z.dense, Y, weights, penalties, V, step, tol)
    live = np.flatnonzero(~converged)
    iterations = 0
    if len(live):
        V[:, live], converged[live], iterations = _fista(
            Z, Y[:, live], weights[:, live], penalties.of(live), V[:, live], step, tol, max_iter
        )
    coef = (V[:d] * inverse_scale).T
    intercept = V[d] - coef @ Z.mean
    return Solution(coef, intercept, newton_steps + iterations, converged)


@dataclass(frozen=True)
class _Penalties:
    """Per-coordinate L1 and L2 penalties (d + 1, B) in standardized coordinates."""

    l1: np.ndarray
    l2: np.ndarray

    def of(self, problems: np.ndarray) -> _Penalties:
        return _Penalties(self.l1[:, problems], self.l2[:, problems])

    def proximal_step(self, U: np.ndarray, step: float) -> np.ndarray:
        """argmin_v |v - U|^2 / (2 step) + the penalties: soft-thresholding, then the L2
        shrinkage (maximum and minimum: np.clip's wrapper costs more than the arithmetic on
        these small arrays)."""
        threshold = step * self.l1
        return (U - np.minimum(np.maximum(U, -threshold), threshold)) / (1.0 + step * self.l2)


def _fista(Z: _Standardized, Y, W, penalties: _Penalties, V, step: float, tol: float, max_iter):
    """FISTA with adaptive restart from V for the problems of Y's columns. Returns their
    solutions, which converged, and the iterations run.

    On a top-k probe's few columns an iteration's arithmetic costs less than calling numpy
    for it, so the loop is written in as few calls as it takes: the gradient step is
    V + (-Z).T (step W / (1 + e^(-Z V)) - step W Y), from a negated copy of Z, in seven."""
    B = V.shape[1]
    T = step * penalties.l1
    T_low, shrink = -T, 1.0 / (1.0 + step * penalties.l2)
    step_W = step * W
    step_WY = step_W * Y
    V, converged = V.copy(), np.zeros(B, dtype=bool)
    # The problems still iterating, and their slices of everything the loop reads.
    live = np.arange(B)
    # Iterations since each problem's last restart; FISTA's momentum is a function of it.
    V_now, V_look, since = V.copy(), V.copy(), np.full(B, -1)
    momentum = _momentum_weights(max_iter)
    limit = tol * step
    iteration = 0
    # e^-z overflows to inf for z below -709, where step W / (1 + inf) = 0 is the right value.
    with np.errstate(over="ignore"):
        for iteration in range(1, max_iter + 1):  # noqa: B007 (returned after the loop)
            residual = Z.negated_times(V_look)
            np.exp(residual, out=residual)
            residual += 1.0
            np.divide(step_W, residual, out=residual)
            residual -= step_WY
            U = Z.negated_transposed_times(residual)
            U += V_look
            # penalties.proximal_step, inlined: its threshold and shrinkage are computed once.
            V_next = U - np.minimum(np.maximum(U, T_low), T)
            V_next *= shrink
            move = V_look - V_next
            done = np.abs(move).max(0) <= limit
            some_done = bool(done.any())
            if some_done:
                V[:, live[done]] = V_next[:, done]
                converged[live[done]] = True
                if done.all():
                    break
            # Restart the momentum of a problem whose step went against its last move.
            change = V_next - V_now
            since += 1
            since[np.einsum("ij,ij->j", move, change) > 0] = 0
            change *= momentum[since]
            change += V_next
            V_look, V_now = change, V_next
            if some_done:
                keep = ~done
                live, since = live[keep], since[keep]
                V_now, V_look = V_now[:, keep], V_look[:, keep]
                step_W, step_WY, shrink = step_W[:, keep], step_WY[:, keep], shrink[:, keep]
                T, T_low = T[:, keep], T_low[:, keep]
        else:
            V[:, live] = V_now
    return V, converged, iteration


NEWTON_STEPS = 30
LINE_SEARCH_HALVINGS = 30


def _newton(Zd: np.ndarray, Y, W, penalties: _Penalties, V, step: float, tol: float):
    """Orthant-wise Newton steps from V for every problem at once: proximal Newton with
    the L1 term's signs fixed for the step, as OWL-QN fixes them (Andrew and Gao 2007), but
    with each problem's exact Hessian. A step solves the Newton system on the free
    coordinates (nonzero, or zero with a subgradient that cannot vanish), sets coordinates
    that would change sign to zero, and backtracks until the objective decreases enough
    (Armijo); it starts at twice the problem's last accepted length, at most a full step.
    A problem leaves when it meets FISTA's own stopping test, taking the proximal-gradient
    point that test computes; one whose line search fails, or that has not converged after
    NEWTON_STEPS, is left to FISTA where it stands. Returns V, the converged mask and the
    steps taken."""
    n, D = Zd.shape
    B = V.shape[1]
    products = (Zd[:, :, None] * Zd[:, None, :]).reshape(n, D * D)  # row i: z_i z_i'
    diagonal = np.arange(D)
    V, converged = V.copy(), np.zeros(B, dtype=bool)
    objective = _objective(Zd @ V, V, Y, W, penalties)
    length = np.ones(B)  # each problem's last accepted step length
    live = np.arange(B)
    steps = 0
    for steps in range(1, NEWTON_STEPS + 1):  # noqa: B007 (returned after the loop)
        v, y, w, pen = V[:, live], Y[:, live], W[:, live], penalties.of(live)
        p = _sigmoid(Zd @ v)
        gradient = Zd.T @ ((p - y) * w)  # of the mean log-loss
        prox = pen.proximal_step(v - step * gradient, step)
        done = np.abs(v - prox).max(0) <= tol * step
        V[:, live[done]] = prox[:, done]
        converged[live[done]] = True
        keep = ~done
        if not keep.any():
            break
        live, v, p, y, w = live[keep], v[:, keep], p[:, keep], y[:, keep], w[:, keep]
        pen = pen.of(keep)
        g = gradient[:, keep] + pen.l2 * v  # of the smooth part, log-loss and L2
        # The subgradient of least norm: at a zero coordinate, 0 where |g| <= the L1 penalty.
        nonzero, sign, l1 = v != 0, np.sign(v), pen.l1
        pseudo = np.where(
            nonzero, g + l1 * sign, np.where(g > l1, g - l1, np.where(g < -l1, g + l1, 0.0))
        )
        free = nonzero | (pseudo != 0)
        orthant = np.where(nonzero, sign, -np.sign(pseudo))
        H = ((p * (1.0 - p) * w).T @ products).reshape(-1, D, D)
        H[:, diagonal, diagonal] += pen.l2.T + 1e-12  # (a tiny ridge keeps it regular)
        H = np.where(free.T[:, :, None] & free.T[:, None, :], H, np.eye(D))
        try:
            direction = -np.linalg.solve(H, (pseudo * free).T[..., None])[..., 0].T
        except np.linalg.LinAlgError:
            break
        accepted = _line_search(
            Zd, v, direction * free, orthant, pseudo, y, w, pen, objective[live], length[live]
        )
        taken = live[accepted.taken]
        V[:, taken], objective[taken] = accepted.V, accepted.objective
        length[taken] = accepted.length
        live = taken
        if not len(live):
            break
    return V, converged, steps


@dataclass(frozen=True)
class _Accepted:
    taken: np.ndarray  # bool, per problem
    V: np.ndarray  # the new points of the problems taken
    objective: np.ndarray
    length: np.ndarray


def _line_search(Zd, v, direction, orthant, pseudo, Y, W, pen: _Penalties, objective, length):
    """Backtracking along each problem's direction, projected on its orthant (penalized
    coordinates that would change sign are set to 0), to an Armijo decrease."""
    B = v.shape[1]
    size = np.minimum(1.0, 2.0 * length)
    taken = np.zeros(B, dtype=bool)
    new_V, new_objective = np.empty_like(v), np.empty(B)
    pending = np.arange(B)
    for _ in range(LINE_SEARCH_HALVINGS):
        trial = v[:, pending] + size[pending] * direction[:, pending]
        crossed = (np.sign(trial) != orthant[:, pending]) & (pen.l1[:, pending] > 0)
        trial[crossed] = 0.0
        value = _objective(Zd @ trial, trial, Y[:, pending], W[:, pending], pen.of(pending))
        decrease = np.einsum("ij,ij->j", pseudo[:, pending], trial - v[:, pending])
        current = objective[pending]
        good = (value <= current + 1e-4 * np.minimum(decrease, 0.0)) & (value < current)
        ok = pending[good]
        new_V[:, ok], new_objective[ok], taken[ok] = trial[:, good], value[good], True
        pending = pending[~good]
        if not len(pending):
            break
        size[pending] /= 2.0
    return _Accepted(taken, new_V[:, taken], new_objective[taken], size[taken])


def _objective(logits, V, Y, W, pen: _Penalties) -> np.ndarray:
    """Each problem's mean log-loss plus its penalties, from its logits (n, B)."""
    loss = np.log1p(np.exp(-np.abs(logits)))  # softplus(z) - y z, stably
    loss += np.maximum(logits, 0.0)
    loss -= Y * logits
    penalty = 0.5 * pen.l2 * V * V + np.where(V != 0, pen.l1 * np.abs(V), 0.0)
    return np.einsum("ij,ij->j", loss, W) + penalty.sum(0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), in z's place: numpy's vectorized exp makes it several times faster
    than scipy's expit on the solver's arrays. (z is capped at -700 first, where e^-z is
    still finite and the value below 1e-304.)"""
    np.negative(z, out=z)
    np.minimum(z, 700.0, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


@functools.cache
def _momentum_weights(count: int) -> np.ndarray:
    """FISTA's extrapolation weights (t_j - 1) / t_(j+1), t_0 = 1 and
    t_(j+1) = (1 + sqrt(1 + 4 t_j^2)) / 2, for j = 0 .. count - 1 iterations since a
    restart: computed once, looked up in the loop (the first is 0, a restart's weight)."""
    t = np.ones(count + 1)
    for j in range(count):
        t[j + 1] = (1.0 + np.sqrt(1.0 + 4.0 * t[j] ** 2)) / 2.0
    weights = (t[:-1] - 1.0) / t[1:]
    weights.flags.writeable = False  # shared by every call
    return weights


def _null_intercept(Y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The optimal intercept with every weight zero: the log-odds of each problem's rows."""
    share = (Y * rows).sum(0) / rows.sum(0)
    share = np.clip(share, 1e-12, 1 - 1e-12)
    return np.log(share / (1 - share))
