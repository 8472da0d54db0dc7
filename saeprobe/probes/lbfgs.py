"""L2 logistic regression for many problems at once, each following scikit-learn's `lbfgs`
path step for step: every C of a grid, on every validation fold, in one batch.

The reference fits each (C, fold) with `LogisticRegression(C, max_iter=1000)`, which hands
the objective to scipy's L-BFGS-B. On raw hidden states most of those fits stop at the
1,000-iteration cap, short of the optimum, so the probe is wherever L-BFGS-B stands after
1,000 iterations, and an exact solver would give another probe. This module runs the same
algorithm for B problems in lock step:

    objective  mean log-loss over the problem's rows + 1 / (2 C n) |w|^2 (intercept free)
    start      w = 0; the first step min(1 / |g|, 1e10) along -g, later steps start at 1
    direction  -H g, H the limited-memory BFGS inverse of the last 10 pairs scaled by
               s'y / y'y (with no bounds, L-BFGS-B's compact form is exactly this)
    step       Moré-Thuente (scipy's DCSRCH, ftol 1e-3, gtol 0.9, xtol 0.1), at most 50
               evaluations, else the memory is dropped and the iteration restarts
    update     skipped when s'y <= eps * (-g'd) * step
    stop       max |g| <= tol, or a relative decrease <= 64 eps, or `max_iter` iterations

The function evaluations, the directions and the end of each iteration (the move, the
stopping tests, the memory update) are batched over the problems that need them; the line
search's state machine, and a restart when one fails, run per problem. With fewer rows
than columns (small training sets, the scarcity regime) the fits run in orthonormal
coordinates of the rows' span, where L-BFGS takes the same steps on fewer numbers
(`_row_space`). Rounding differs from scikit-learn's (sums run in another order), so an
unconverged probe lands near, not on, the reference's: bench/probes.py measures how near."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The Moré-Thuente line search L-BFGS-B runs; a private module, so constraints.txt pins scipy.
from scipy.optimize._dcsrch import DCSRCH
from torch.nn import functional as F

MEMORY = 10  # scipy's default maxcor
MAX_LINE_SEARCH = 50  # scikit-learn's maxls
FTOL = 64 * np.finfo(float).eps  # scikit-learn's ftol: stop on a relative decrease below it
EPS = np.finfo(float).eps
MAX_STEP = 1e10  # L-BFGS-B's longest step without bounds


@dataclass(frozen=True)
class Solution:
    coef: np.ndarray  # (B, d)
    intercept: np.ndarray  # (B,)
    iterations: np.ndarray  # (B,)
    converged: np.ndarray  # (B,) bool


class _Objective:
    """Mean log-loss over each problem's rows plus its L2 penalty, for many points at once."""

    def __init__(self, X, targets, rows, Cs, features):
        used = rows.any(1)  # rows no problem reads (a holdout's validation rows) drop out
        # In torch: for these skinny products its BLAS is about twice as fast as numpy's,
        # and its softplus several times faster than numpy's logaddexp. Problems lie along
        # the first axis throughout.
        X = np.asarray(X[used], dtype=np.float64)
        self.basis = _row_space(X) if features is None else None
        if self.basis is not None:  # the problem in coordinates of X's row space
            X = X @ self.basis
        # Both products read this one matrix (the second through its transpose, a view): two
        # copies would not stay in cache together.
        self.X = torch.from_numpy(np.ascontiguousarray(X))
        self.Y = torch.from_numpy(np.ascontiguousarray(targets[used].T, dtype=np.float64))
        counts = rows[used].sum(0).astype(float)
        if (counts == 0).any():
            raise ValueError("a problem has no rows")
        self.weights = torch.from_numpy(np.ascontiguousarray((rows[used] / counts).T))
        self.l2 = 1.0 / (np.asarray(Cs, dtype=float) * counts)
        self.weighted_targets = self.weights * self.Y
        d = X.shape[1]
        self.size = d + 1  # the coordinates the solver moves, the intercept's last
        self.mask = None if features is None else np.ones((len(counts), d + 1))
        if features is not None:  # a problem on the first k columns keeps the others at 0
            for b, k in enumerate(features):
                self.mask[b, k:d] = 0.0

    def weights_of(self, W: np.ndarray) -> np.ndarray:
        """The problems' weights on X's own columns, from the solver's coordinates."""
        return W[:, :-1] if self.basis is None else W[:, :-1] @ self.basis.T

    def gradient_small(self, G: np.ndarray, tol: float) -> np.ndarray:
        """max |g| <= tol, L-BFGS-B's test, for gradients on X's own columns. In row-space
        coordinates the gradient's Euclidean norm is the same, and |g|_2 / sqrt(d) <=
        max |g| <= |g|_2 bounds the test; only gradients between the bounds are mapped back
        (a product as costly as the objective's)."""
        if self.basis is None:
            return np.abs(G).max(1) <= tol
        intercept = np.abs(G[:, -1])
        norm = np.linalg.norm(G[:, :-1], axis=1)
        small = np.maximum(intercept, norm) <= tol
        unsure = ~small & (np.maximum(intercept, norm / np.sqrt(self.basis.shape[0])) <= tol)
        if unsure.any():
            exact = np.abs(G[unsure, :-1] @ self.basis.T).max(1)
            small[unsure] = np.maximum(intercept[unsure], exact) <= tol
        return small

    def __call__(self, index: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives (len(index),) and gradients (len(index), d + 1) at the rows of W."""
        d = self.X.shape[1]
        W_t = torch.from_numpy(W)
        raw = torch.addmm(W_t[:, d:], W_t[:, :d], self.X.T)
        rows = torch.from_numpy(index)
        w, wy = self.weights[rows], self.weighted_targets[rows]
        # softplus(z) = log(1 + e^z), exactly up to z = 50 (beyond it, e^-50 is below eps)
        loss = (w * F.softplus(raw, threshold=50.0) - wy * raw).sum(1).numpy()
        residual = w * torch.sigmoid(raw) - wy
        grad = np.empty_like(W)
        grad[:, :d] = (residual @ self.X).numpy()
        weights = W[:, :d]
        grad[:, :d] += self.l2[index, None] * weights
        grad[:, d] = residual.sum(1).numpy()
        loss += 0.5 * self.l2[index] * np.einsum("bd,bd->b", weights, weights)
        if self.mask is not None:
            grad *= self.mask[index]
        return loss, grad


def _row_space(X: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis (d, n) of the span of X's rows where there are fewer rows than
    columns, else None. L-BFGS started at w = 0 never leaves that span (every gradient is
    X' r + w / (C n)), and every quantity it computes (inner products, norms, objective
    values) is the same in orthonormal coordinates of it, so the fits take the same steps
    on n coordinates instead of d; only the max |g| stopping test needs the columns back
    (`_Objective.gradient_small`)."""
    n, d = X.shape
    if n >= d:
        return None
    return np.linalg.qr(X.T)[0]


class _Memory:
    """Every problem's last MEMORY (s, y) pairs, oldest first, zero-padded."""

    def __init__(self, B: int, size: int):
        self.S = np.zeros((B, MEMORY, size))
        self.Y = np.zeros((B, MEMORY, size))
        self.count = np.zeros(B, dtype=int)

    def add(self, index: np.ndarray, s: np.ndarray, y: np.ndarray) -> None:
        """Append a pair to each problem of `index`, dropping the oldest of a full memory."""
        full = index[self.count[index] == MEMORY]
        if len(full):
            self.S[full, :-1], self.Y[full, :-1] = self.S[full, 1:], self.Y[full, 1:]
            self.count[full] -= 1
        slot = self.count[index]
        self.S[index, slot], self.Y[index, slot] = s, y
        self.count[index] += 1

    def clear(self, b: int) -> None:
        self.S[b], self.Y[b], self.count[b] = 0.0, 0.0, 0

    def directions(self, index: np.ndarray, G: np.ndarray) -> np.ndarray:
        """-H g for the problems `index` at gradients G, H in the compact form of Byrd,
        Nocedal and Schnabel (1994) that L-BFGS-B keeps, scaled by s'y / y'y of the newest
        pair, for all of them in a few batched products. Padding pairs are zero; a unit
        diagonal in R keeps the solves regular and their coefficients zero."""
        S, Y, count = self.S[index], self.Y[index], self.count[index]
        YT = Y.transpose(0, 2, 1)
        SY, YY = S @ YT, Y @ YT  # (P, m, m)
        eye = np.eye(MEMORY)
        padding = np.arange(MEMORY)[None, :] >= count[:, None]
        R = np.triu(SY) + padding[:, :, None] * eye  # R[i, j] = s_i . y_j, i <= j
        newest, rows = np.maximum(count - 1, 0), np.arange(len(index))
        sy, yy = SY[rows, newest, newest], YY[rows, newest, newest]
        gamma = np.where(count > 0, sy / np.where(yy > 0, yy, 1.0), 1.0)
        a, b = (S @ G[..., None])[..., 0], (Y @ G[..., None])[..., 0]
        v = -np.linalg.solve(R, a[..., None])[..., 0]
        middle = np.diagonal(SY, axis1=1, axis2=2)[:, :, None] * eye + gamma[:, None, None] * YY
        rhs = -(middle @ v[..., None])[..., 0] - gamma[:, None] * b
        u = np.linalg.solve(R.transpose(0, 2, 1), rhs[..., None])[..., 0]
        Hg = gamma[:, None] * G + (u[:, None, :] @ S)[:, 0]
        return -(Hg + gamma[:, None] * (v[:, None, :] @ Y)[:, 0])


def solve(
    X: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    Cs: np.ndarray,
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    features: np.ndarray | None = None,
) -> Solution:
    """Fit B binary L2 logistic regressions on rows of X (n, d): problem b fits
    `targets[:, b]` (0/1) on the rows where `rows[:, b]` is true with penalty 1 / C[b], as
    `LogisticRegression(C=C[b], max_iter=max_iter, tol=tol)` does on those rows.
    `features[b]`, if given, uses only the first features[b] columns (the rest stay 0)."""
    objective = _Objective(X, targets, rows, Cs, features)
    B, size = targets.shape[1], objective.size
    x = np.zeros((B, size))
    f, g = objective(np.arange(B), x)
    memory = _Memory(B, size)
    iterations = np.zeros(B, dtype=int)
    converged = objective.gradient_small(g, tol)
    done = converged.copy()
    # The line search of each problem: where it started, along what, how far, its state.
    start_x, start_f, start_g = x.copy(), f.copy(), g.copy()
    direction, gd_start, step = np.zeros_like(x), np.zeros(B), np.zeros(B)
    evaluations = np.zeros(B, dtype=int)
    searches: list[DCSRCH | None] = [None] * B
    tasks = [b""] * B

    def start(index: np.ndarray) -> list[int]:
        """New directions and line searches; the problems that keep going."""
        if len(index) == 0:
            return []
        start_x[index], start_f[index], start_g[index] = x[index], f[index], g[index]
        D = memory.directions(index, g[index])
        gd = np.einsum("pd,pd->p", g[index], D)
        going = []
        for i, b in enumerate(index):
            if gd[i] >= 0:  # not a descent direction: drop the memory, else stop
                if memory.count[b] == 0:
                    done[b] = True
                    continue
                memory.clear(b)
                D[i], gd[i] = -g[b], -(g[b] @ g[b])
            first = iterations[b] == 0
            trial = min(1.0 / float(np.linalg.norm(D[i])), MAX_STEP) if first else 1.0
            searches[b] = DCSRCH(None, None, 1e-3, 0.9, 0.1, 0.0, MAX_STEP)
            step[b], _, _, tasks[b] = searches[b]._iterate(trial, f[b], gd[i], b"START")
            evaluations[b] = 0
            going.append(b)
        direction[index], gd_start[index] = D, gd
        return going

    pending = np.array(start(np.flatnonzero(~done)), dtype=int)
    while len(pending):
        evaluations[pending] += 1
        restart = pending[evaluations[pending] > MAX_LINE_SEARCH]
        for b in restart:  # too many evaluations: back to the start, without memory
            x[b], f[b], g[b] = start_x[b], start_f[b], start_g[b]
            done[b] = memory.count[b] == 0
            memory.clear(b)
        index = pending[evaluations[pending] <= MAX_LINE_SEARCH]
        again = start(restart[~done[restart]])
        if len(index) == 0:
            pending = np.array(again, dtype=int)
            continue
        trial = start_x[index] + step[index, None] * direction[index]
        f_trial, g_trial = objective(index, trial)
        gd = np.einsum("pd,pd->p", g_trial, direction[index])
        moved = np.zeros(len(index), dtype=bool)
        for i, b in enumerate(index):
            step[b], _, _, tasks[b] = searches[b]._iterate(step[b], f_trial[i], gd[i], tasks[b])
            if tasks[b][:2] == b"FG":
                again.append(b)
            elif tasks[b][:5] == b"ERROR":
                done[b] = True
            else:  # CONV or WARN: L-BFGS-B moves to the point just evaluated either way
                moved[i] = True
        # The iteration's end for every problem whose line search ended, together.
        m, where = index[moved], np.flatnonzero(moved)
        x[m], f[m], g[m] = trial[where], f_trial[where], g_trial[where]
        iterations[m] += 1
        at_cap = iterations[m] >= max_iter
        scale = np.maximum(np.maximum(np.abs(start_f[m]), np.abs(f[m])), 1.0)
        small = objective.gradient_small(g[m], tol) | (start_f[m] - f[m] <= FTOL * scale)
        converged[m[~at_cap & small]] = True
        done[m[at_cap | small]] = True
        going = m[~(at_cap | small)]
        s = step[going, None] * direction[going]
        y = g[going] - start_g[going]
        sy = np.einsum("pd,pd->p", s, y)
        update = sy > EPS * (-gd_start[going] * step[going])
        memory.add(going[update], s[update], y[update])
        pending = np.array(again + start(going), dtype=int)
    return Solution(objective.weights_of(x), x[:, -1].copy(), iterations, converged)
