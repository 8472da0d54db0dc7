"""Statistics over seeds: mean, spread, a 95% interval, and a paired one-sided test."""

from __future__ import annotations

import numpy as np
from scipy import stats


def summarize(values: np.ndarray) -> dict[str, float]:
    """mean, sample std and the t-based 95% confidence interval of the mean."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired_greater(method: np.ndarray, baseline: np.ndarray) -> float:
    """p-value of the paired one-sided t-test that `method` > `baseline` (same seeds);
    1.0 when every difference is zero (no evidence either way)."""
    diff = np.asarray(method, dtype=float) - np.asarray(baseline, dtype=float)
    if len(diff) < 2:
        return float("nan")
    if np.allclose(diff, diff[0]):
        return 0.0 if diff[0] > 0 else 1.0
    return float(stats.ttest_rel(method, baseline, alternative="greater").pvalue)
