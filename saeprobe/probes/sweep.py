"""Run every probe of one data set over the configured regimes: plan the jobs, then run them
in parallel; one row a fit.

Every probe of a (regime, level, seed) shares that seed's sample, so comparisons between
them are paired. A fit is a function of its training rows, their labels and the seed, so
settings that draw the same training sample share one fit, scored on each one's test set:
the shift regime trains on the normal regime's sample of the same seed, and label noise at
level 0 leaves it unchanged. A setting the data cannot support is recorded as `skipped`
with its reason; a fit that raises anything else fails the stage, naming the fit, unless
`probe.allow_failures` records it as `failed`."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from joblib import Parallel, delayed, parallel_config
from sklearn.metrics import accuracy_score, f1_score

from saeprobe.config import ProbeConfig, RegimeConfig
from saeprobe.errors import ConfigError, Infeasible
from saeprobe.probes.methods import METHODS, FitContext, fit_method
from saeprobe.probes.schema import results_frame
from saeprobe.probes.validation import auc
from saeprobe.regimes import Sample, sample

SCHEDULER_TIMEOUT_S = 30  # how long to wait for probe.scheduler to answer


class FitFailed(RuntimeError):
    """A fit raised an unexpected exception; the message names the fit."""


@dataclass
class Representation:
    """One input to the probes: `layer` is -1 for raw text. A `comparison` input is a pooling
    beside the main one, probed in the normal regime only (MOSAIC's pooling comparison)."""

    layer: int
    name: str  # hidden, sae_<variant> or text
    X: np.ndarray | sp.csr_matrix
    pooling: str = ""
    comparison: bool = False
    mosaic: bool = False  # binarized top-n counts, for MOSAIC's classifiers
    task_docs: int = 0  # the task's texts the SAE was fine-tuned on

    @property
    def kind(self) -> str:
        if self.name == "text":
            return "text"
        if self.mosaic:
            return "mosaic"
        return "sae" if self.name.startswith("sae") else "hidden"


@dataclass(frozen=True)
class Setting:
    """Where a fit sits in the sweep: the key of its results row."""

    dataset: str
    regime: str
    level: float | None
    seed: int

    def row(self, rep: Representation | None = None, method: str = "") -> dict:
        return {
            "train_dataset": self.dataset,
            "test_dataset": self.dataset,
            "layer": rep.layer if rep else None,
            "representation": rep.name if rep else "",
            "pooling": rep.pooling if rep else "",
            "pooling_comparison": rep.comparison if rep else False,
            "sae_task_docs": rep.task_docs if rep else 0,
            "method": method,
            "regime": self.regime,
            "level": self.level,
            "seed": self.seed,
        }


@dataclass
class ProbeJob:
    """The methods of one representation on one sample."""

    setting: Setting
    rep: Representation
    methods: list[str]
    sample: Sample


def methods_for(
    rep: Representation, cfg: ProbeConfig, regime: str, rcfg: RegimeConfig
) -> list[str]:
    """The methods one representation gets in one regime. The top-k probes take the
    regime's k (the paper: every k in the normal regime, 16 and 128 elsewhere); binarized
    top-k probes and the pooling comparison run in the normal regime only, as in the
    papers."""
    if rep.comparison and regime != "normal":
        return []
    if rep.kind == "mosaic":
        return list(cfg.mosaic_methods)
    if rep.kind == "sae":
        names = []
        for m in cfg.sae_methods:
            if m == "sae_topk":
                names += [f"sae_top{k}" for k in rcfg.sae_k or cfg.sae_k]
            elif m == "sae_topk_bin":
                if regime == "normal":
                    names += [f"sae_top{k}_bin" for k in rcfg.sae_k or cfg.sae_k]
            else:
                names.append(m)
    else:
        names = [m for m in cfg.baselines if METHODS[m].kind == rep.kind]
    allowed = cfg.compare_methods if rep.comparison else rcfg.methods
    if allowed is not None:
        names = [m for m in names if m in allowed or _family(m) in allowed]
    return names


def _family(method: str) -> str:
    """sae_top<k> belongs to sae_topk, sae_top<k>_bin to sae_topk_bin."""
    if not method.startswith("sae_top"):
        return method
    return "sae_topk_bin" if method.endswith("_bin") else "sae_topk"


def levels_of(regime: str, cfg: RegimeConfig) -> list[float | None]:
    return [None] if regime in ("normal", "shift") else list(cfg.levels)


def plan(
    dataset: str,
    y: np.ndarray,
    split: np.ndarray,
    reps: list[Representation],
    cfg: ProbeConfig,
    regimes: dict[str, RegimeConfig],
    base_seed: int,
) -> tuple[list[ProbeJob], list[dict]]:
    """The jobs of the sweep, and the rows of the settings that cannot be built."""
    pools = {s: np.flatnonzero(split == s) for s in ("train", "test", "ood")}
    jobs: list[ProbeJob] = []
    skipped: list[dict] = []
    for regime, rcfg in regimes.items():
        if rcfg.datasets is not None and dataset not in rcfg.datasets:
            continue
        for level in levels_of(regime, rcfg):
            for s in range(rcfg.seeds):
                setting = Setting(dataset, regime, level, base_seed + s)
                try:
                    drawn = sample(
                        regime,
                        level,
                        rcfg,
                        y,
                        train_pool=pools["train"],
                        test_pool=pools["test"],
                        ood_pool=pools["ood"],
                        seed=setting.seed,
                    )
                except Infeasible as exc:
                    skipped.append(setting.row() | {"status": "skipped", "message": str(exc)})
                    continue
                for rep in reps:
                    if rcfg.layers is not None and rep.layer >= 0 and rep.layer not in rcfg.layers:
                        continue
                    methods = methods_for(rep, cfg, regime, rcfg)
                    if methods:
                        jobs.append(ProbeJob(setting, rep, methods, drawn))
    return jobs, skipped


@dataclass
class SharedFit:
    """One method fit once on one training sample and scored on the test set of every job
    that trains it on that sample (`share_fits`); `jobs` indexes the planned jobs."""

    rep: Representation
    method: str
    sample: Sample
    settings: list[Setting]
    tests: list[np.ndarray]
    jobs: list[int]


def share_fits(jobs: list[ProbeJob]) -> list[SharedFit]:
    """The distinct fits of the planned jobs, the largest training samples first (so that
    the last fits a worker picks up are short ones)."""
    fits: dict[tuple, SharedFit] = {}
    for i, job in enumerate(jobs):
        drawn = job.sample
        for method in job.methods:
            key = (
                id(job.rep),
                method,
                job.setting.seed,
                drawn.train.tobytes(),
                drawn.train_labels.tobytes(),
            )
            if key not in fits:
                fits[key] = SharedFit(job.rep, method, drawn, [], [], [])
            fits[key].settings.append(job.setting)
            fits[key].tests.append(drawn.test)
            fits[key].jobs.append(i)
    return sorted(fits.values(), key=lambda fit: -len(fit.sample.train))


def run_shared_fit(
    shared: SharedFit, y: np.ndarray, n_classes: int, cfg: ProbeConfig
) -> tuple[list[dict], float]:
    """One row per job of the shared fit, and the seconds the fit took."""
    rep, method, train = shared.rep, shared.method, shared.sample.train
    test = np.concatenate(shared.tests)
    first = shared.settings[0]
    ctx = FitContext(cfg=cfg, seed=first.seed, n_classes=n_classes)
    start = time.perf_counter()
    try:
        fit = fit_method(method, rep.X[train], shared.sample.train_labels, rep.X[test], ctx)
        outcome = None
    except Infeasible as exc:
        outcome = {"status": "skipped", "message": str(exc)}
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}"
        if not cfg.allow_failures:
            name = f"{rep.name}/{method} at layer {rep.layer}"
            raise FitFailed(
                f"probe {name}, regime {first.regime} level {first.level} "
                f"seed {first.seed} failed: {what} (set probe.allow_failures: true "
                "to record such fits as failed and go on)"
            ) from exc
        outcome = {"status": "failed", "message": what}
    seconds = time.perf_counter() - start
    rows, offset = [], 0
    for setting, rows_of_test in zip(shared.settings, shared.tests, strict=True):
        row = setting.row(rep, method) | {"n_train": len(train), "n_test": len(rows_of_test)}
        if outcome is None:
            proba = fit.proba[offset : offset + len(rows_of_test)]
            row |= scores(y[rows_of_test], proba) | fit_summary(fit.params, fit.val_auc)
        else:
            row |= outcome
        rows.append(row)
        offset += len(rows_of_test)
    return rows, seconds


def scores(y_true: np.ndarray, proba: np.ndarray) -> dict:
    pred = proba.argmax(1)
    return {
        "roc_auc": auc(y_true, proba),
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)),
    }


def fit_summary(params: dict, val_auc: float) -> dict:
    params = dict(params)
    if "latents" in params:  # the first 32 chosen latents are enough to read a probe
        params["latents"] = params["latents"][:32]
    return {"val_auc": val_auc, "params": json.dumps(params), "status": "ok"}


def run_sweep(
    dataset: str,
    prepared: pl.DataFrame,
    reps: list[Representation],
    cfg: ProbeConfig,
    regimes: dict[str, RegimeConfig],
    base_seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, dict[str, dict[str, float]]]:
    """The results table, and the seconds spent per regime and representation kind
    (`by_kind`) and per regime and method (`by_method`); timings stay out of the table, so
    that the table is a function of its inputs."""
    y = prepared["label"].to_numpy()
    n_classes = int(y.max()) + 1
    jobs, rows = plan(dataset, y, prepared["split"].to_numpy(), reps, cfg, regimes, base_seed)
    if progress:
        progress(f"{dataset}: {len(jobs)} probe jobs")
    shared = share_fits(jobs)
    done = run_parallel([delayed(run_shared_fit)(fit, y, n_classes, cfg) for fit in shared], cfg)
    by_job: list[dict[str, dict]] = [{} for _ in jobs]
    by_kind: dict[str, float] = defaultdict(float)
    by_method: dict[str, float] = defaultdict(float)
    for fit, (fit_rows, elapsed) in zip(shared, done, strict=True):
        # The fit's time counts where it was first planned; the settings that share it
        # ran no fit of their own.
        for n, (i, row) in enumerate(zip(fit.jobs, fit_rows, strict=True)):
            by_job[i][fit.method] = row
            by_kind[f"{row['regime']}/{fit.rep.kind}"] += elapsed if n == 0 else 0.0
            by_method[f"{row['regime']}/{fit.method}"] += elapsed if n == 0 else 0.0
    rows += [by_job[i][method] for i, job in enumerate(jobs) for method in job.methods]
    return results_frame(rows), {"by_kind": rounded(by_kind), "by_method": rounded(by_method)}


def rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 3) for key, value in sorted(seconds.items())}


def run_parallel(tasks: list, cfg: ProbeConfig) -> list:
    """Run joblib tasks on this machine (loky) or on a Dask cluster through joblib's dask
    backend; every task is a pure function of its job, so both give the same results."""
    if cfg.backend != "dask":
        return Parallel(n_jobs=cfg.n_jobs)(tasks)
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(
            "params: 'probe.backend' dask needs the distributed package: "
            "pip install 'saeprobe[dask]'"
        ) from exc
    try:
        client = Client(cfg.scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"params: 'probe.scheduler' {cfg.scheduler!r}: no Dask scheduler answers there "
            f"({type(exc).__name__}: {exc}); expected the address of a running one, "
            "such as tcp://127.0.0.1:8786"
        ) from exc
    with client, parallel_config(backend="dask"):
        return Parallel(n_jobs=cfg.n_jobs)(tasks)
