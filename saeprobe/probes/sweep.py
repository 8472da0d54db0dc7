"""Run every probe of one data set over the configured regimes, in parallel; one row a fit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.metrics import accuracy_score, f1_score

from saeprobe.errors import ConfigError
from saeprobe.probes.methods import BASELINES, TEXT_METHODS, ProbeConfig, fit_method
from saeprobe.probes.validation import auc
from saeprobe.regimes import REGIMES, RegimeConfig, sample

RESULT_SCHEMA = {
    "train_dataset": pl.String,
    "test_dataset": pl.String,
    "layer": pl.Int64,
    "representation": pl.String,
    "method": pl.String,
    "regime": pl.String,
    "level": pl.Float64,
    "seed": pl.Int64,
    "roc_auc": pl.Float64,
    "accuracy": pl.Float64,
    "macro_f1": pl.Float64,
    "val_auc": pl.Float64,
    "n_train": pl.Int64,
    "n_test": pl.Int64,
    "params": pl.String,
    "status": pl.String,
    "message": pl.String,
    "seconds": pl.Float64,
}


@dataclass
class Representation:
    """One input to the probes: `layer` is -1 for raw text."""

    layer: int
    name: str  # hidden, sae_<variant>, sae_<variant>_bin or text
    X: np.ndarray | sp.csr_matrix | None
    error: str | None = None

    @property
    def kind(self) -> str:
        return (
            "text" if self.name == "text" else ("sae" if self.name.startswith("sae") else "hidden")
        )


def methods_for(rep: Representation, cfg: ProbeConfig, allowed: list[str] | None) -> list[str]:
    if rep.kind == "text":
        names = [m for m in cfg.baselines if m in TEXT_METHODS]
    elif rep.kind == "hidden":
        names = [m for m in cfg.baselines if m in BASELINES]
    else:
        names = []
        for m in cfg.sae_methods:
            names += [f"sae_top{k}" for k in cfg.sae_k] if m == "sae_topk" else [m]
    if allowed is not None:
        names = [
            m for m in names if m in allowed or (m.startswith("sae_top") and "sae_topk" in allowed)
        ]
    return names


def levels_of(regime: str, cfg: RegimeConfig) -> list[float | None]:
    if regime in ("normal", "shift"):
        return [None]
    if not cfg.levels:
        raise ConfigError(f"params: 'regimes.{regime}.levels' must list at least one level")
    return list(cfg.levels)


def base_row(
    name: str, rep: Representation | None, method: str, regime: str, level: float | None, seed: int
) -> dict:
    return {
        "train_dataset": name,
        "test_dataset": name,
        "layer": rep.layer if rep else None,
        "representation": rep.name if rep else "",
        "method": method,
        "regime": regime,
        "level": level,
        "seed": seed,
    }


def run_fits(
    name: str,
    rep: Representation,
    methods: list[str],
    regime: str,
    level: float | None,
    seed: int,
    train: np.ndarray,
    labels: np.ndarray,
    test: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cfg: ProbeConfig,
) -> list[dict]:
    rows = []
    for method in methods:
        row = base_row(name, rep, method, regime, level, seed)
        row |= {"n_train": len(train), "n_test": len(test)}
        start = time.perf_counter()
        try:
            fit = fit_method(method, rep.X[train], labels, rep.X[test], cfg, seed, n_classes)
        except ConfigError as exc:
            rows.append(row | {"status": "skipped", "message": str(exc)})
            continue
        except Exception as exc:  # a library failing on one fit must not sink the sweep
            rows.append(row | {"status": "failed", "message": f"{type(exc).__name__}: {exc}"})
            continue
        pred = fit.proba.argmax(1)
        params = {k: v for k, v in fit.params.items() if k != "latents"}
        if "latents" in fit.params:
            params["latents"] = fit.params["latents"][:32]
        rows.append(
            row
            | {
                "roc_auc": auc(y[test], fit.proba),
                "accuracy": float(accuracy_score(y[test], pred)),
                "macro_f1": float(f1_score(y[test], pred, average="macro", zero_division=0)),
                "val_auc": fit.val_auc,
                "params": json.dumps(params),
                "status": "ok",
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def run_sweep(
    name: str,
    prepared: pl.DataFrame,
    reps: list[Representation],
    cfg: ProbeConfig,
    regimes: dict[str, RegimeConfig],
    base_seed: int,
    progress: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    y = prepared["label"].to_numpy()
    n_classes = int(y.max()) + 1
    split = prepared["split"].to_numpy()
    pools = {s: np.flatnonzero(split == s) for s in ("train", "test", "ood")}
    rows: list[dict] = []
    jobs = []
    for regime, rcfg in regimes.items():
        if regime not in REGIMES:
            raise ConfigError(f"params: unknown regime '{regime}'; expected some of {REGIMES}")
        for level in levels_of(regime, rcfg):
            for s in range(rcfg.seeds):
                seed = base_seed + s
                try:
                    drawn = sample(
                        regime, level, rcfg, y, pools["train"], pools["test"], pools["ood"], seed
                    )
                except ConfigError as exc:
                    rows.append(
                        base_row(name, None, "", regime, level, seed)
                        | {"status": "skipped", "message": str(exc)}
                    )
                    continue
                for rep in reps:
                    if rcfg.layers is not None and rep.layer >= 0 and rep.layer not in rcfg.layers:
                        continue
                    methods = methods_for(rep, cfg, rcfg.methods)
                    if not methods:
                        continue
                    if rep.error:
                        rows += [
                            base_row(name, rep, m, regime, level, seed)
                            | {"status": "skipped", "message": rep.error}
                            for m in methods
                        ]
                        continue
                    jobs.append(
                        delayed(run_fits)(
                            name,
                            rep,
                            methods,
                            regime,
                            level,
                            seed,
                            drawn.train,
                            drawn.train_labels,
                            drawn.test,
                            y,
                            n_classes,
                            cfg,
                        )
                    )
    if progress:
        progress(f"{name}: {len(jobs)} probe jobs")
    for result in Parallel(n_jobs=cfg.n_jobs, verbose=0)(jobs):
        rows += result
    return results_frame(rows)


def results_frame(rows: list[dict]) -> pl.DataFrame:
    full = [{key: row.get(key) for key in RESULT_SCHEMA} for row in rows]
    return pl.DataFrame(full, schema=RESULT_SCHEMA)
