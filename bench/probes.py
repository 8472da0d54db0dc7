"""saeprobe's probes against the sparse-probing reference, in every regime and level.

    python bench/probes.py [--tasks 6] [--sample-seed 0] [--seeds 1] [--layer 6]
                           [--methods ...] [--regimes ...] [--k 16 128] [--root .]

Draws a seeded sample of binary tasks of the packaged benchmark that the pipeline does not
use (one of them with a shifted split), prepares and extracts them with the pipeline's
model and params (cached under <cache_dir>/bench), pools the last token, and encodes it
with the pipeline's pretrained SAE of that layer (run `make repro` first). Then, on
identical samples and features, it fits every probe that has a reference function with
saeprobe and with the `sae-probes` package's own code (its files are loaded directly: the
package's imports need libraries saeprobe does not):

    logreg_l2, logreg_l1  find_best_reg (penalty l2 / l1)
    pca, knn, xgboost, mlp  find_best_pcareg, find_best_knn, find_best_xgboost, find_best_mlp
    sae_top<k>            run_sae_evals.get_sorted_indices + find_best_reg(penalty l1)

and prints, per method and regime, the mean |test AUC difference|, the fits, and both wall
times with their ratio (reference / saeprobe), then the same per method over all regimes and
over all the methods asked for (with the default --methods, the whole sweep). Both run on
one BLAS and OpenMP thread (torch's too, which the batched lbfgs uses), as each of the
pipeline's sweep workers does (joblib gives a worker its share of the cores): small fits
spend more time waking threads than computing.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from saeprobe import config
from saeprobe.config import DatasetConfig, ProbeConfig
from saeprobe.data.prepare import prepare_dataset
from saeprobe.data.sources import package_dir, read_csv_zst, sae_probes_dir, sae_probes_tasks
from saeprobe.errors import Infeasible
from saeprobe.extract import extract_dataset
from saeprobe.models import cache_root, load_model
from saeprobe.probes.methods import FitContext, fit_method
from saeprobe.probes.validation import auc
from saeprobe.regimes import sample
from saeprobe.sae.io import load_sae
from saeprobe.store import read_pooled

REFERENCE_METHODS = ("logreg_l2", "logreg_l1", "pca", "knn", "xgboost", "mlp", "sae_topk")


def load_reference():
    """The reference's training module, and its top-k latent ranking taken from the source
    of run_sae_evals.py (whose own imports need SAELens)."""
    folder = package_dir("sae_probes", "pip install --no-deps sae-probes")
    spec = importlib.util.spec_from_file_location(
        "sae_probes_training", folder / "utils_training.py"
    )
    training = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(training)
    tree = ast.parse((folder / "run_sae_evals.py").read_text())
    wanted = {"get_sorted_indices", "mean_act_normalization"}
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    namespace: dict = {"torch": torch, "Callable": object}
    exec(compile(ast.Module(defs, type_ignores=[]), "run_sae_evals.py", "exec"), namespace)
    return training, namespace["get_sorted_indices"], namespace["mean_act_normalization"]


def reference_fit(ref, method: str, X_tr, y_tr, X_te, y_te, seed: int) -> float:
    training, sorted_indices, normalization = ref
    if method.startswith("sae_top"):
        k = int(method.removeprefix("sae_top"))
        order = sorted_indices(torch.tensor(X_tr, dtype=torch.float32), y_tr, normalization)
        keep = order[:k].numpy()
        result = training.find_best_reg(
            X_tr[:, keep], y_tr, X_te[:, keep], y_te, penalty="l1", seed=seed
        )
    elif method in ("logreg_l2", "logreg_l1"):
        penalty = method[-2:]
        result = training.find_best_reg(X_tr, y_tr, X_te, y_te, penalty=penalty, seed=seed)
    elif method == "knn":
        result = training.find_best_knn(X_tr, y_tr, X_te, y_te, n_jobs=1, seed=seed)
    else:
        fn = {
            "pca": training.find_best_pcareg,
            "xgboost": training.find_best_xgboost,
            "mlp": training.find_best_mlp,
        }[method]
        result = fn(X_tr, y_tr, X_te, y_te, seed=seed)
    return result.metrics.test_auc


def pick_tasks(params: dict, n: int, seed: int) -> list[str]:
    """`n` binary tasks the pipeline does not use, seeded; one of them has a shifted split."""
    used = {cfg.get("task") for cfg in params["datasets"].values()}
    used |= set(params["corpus"]["tasks"])
    ood = {p.name.removesuffix("_OOD.csv.zst") for p in (sae_probes_dir() / "OOD data").iterdir()}
    binary = {t for t, path in sae_probes_tasks().items() if is_binary(path)}
    candidates = sorted(t for t in binary if t not in used)
    rng = np.random.default_rng(seed)
    with_shift = sorted(t for t in candidates if t in ood)
    first = [with_shift[rng.integers(len(with_shift))]] if with_shift and n else []
    rest = [t for t in candidates if t not in first]
    return first + [rest[i] for i in rng.choice(len(rest), size=max(n - 1, 0), replace=False)]


def is_binary(path: Path) -> bool:
    return read_csv_zst(path)["target"].n_unique() == 2


def features(params: dict, task: str, layer: int, sae_path: Path, model_holder: dict):
    """The prepared table, last-token hidden states and their SAE codes of one task."""
    cfg = DatasetConfig(source="sae_probes", task=task, max_examples=600, max_ood_examples=300)
    prepared = prepare_dataset(task, cfg, config.seed(params))
    model_cfg = config.model_config(params)
    extract_cfg = config.extract_config(params)
    out = cache_root(model_cfg) / "bench" / f"{Path(str(model_cfg.name)).name}-{task}"
    if not (out / "pooled.parquet").exists():
        if "model" not in model_holder:
            model_holder["model"] = load_model(model_cfg)
        extract_dataset(
            model_holder["model"],
            prepared["text"].to_list(),
            prepared["id"].to_list(),
            extract_cfg,
            out,
        )
    ids, X = read_pooled(out / "pooled.parquet", layer, "last")
    row = {doc_id: i for i, doc_id in enumerate(ids)}
    X = X[[row[i] for i in prepared["id"].to_list()]].astype(np.float64)
    sae = load_sae(sae_path)
    with torch.no_grad():
        codes = sae.encode(torch.tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
    return prepared, X, codes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=list(REFERENCE_METHODS))
    parser.add_argument("--regimes", nargs="+", default=list(config.REGIMES))
    parser.add_argument("--k", nargs="+", type=int, default=[16, 128])
    parser.add_argument("--verbose", action="store_true", help="print every fit's |dAUC|")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    params = config.load_params(args.root / "params.yaml")
    ref = load_reference()
    sae_path = args.root / f"data/sae/L{args.layer}/pretrained/sae"
    methods = []
    for m in args.methods:
        methods += [f"sae_top{k}" for k in args.k] if m == "sae_topk" else [m]
    diffs: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    tasks = pick_tasks(params, args.tasks, args.sample_seed)
    print(f"tasks: {tasks}")
    with threadpool_limits(1):
        compare(args, params, tasks, methods, ref, sae_path, diffs, seconds)
    report(args, methods, diffs, seconds)


def compare(args, params, tasks, methods, ref, sae_path, diffs, seconds) -> None:
    """Fit every method with saeprobe and with the reference on the same samples."""
    regimes = config.regime_configs(params)
    cfg = ProbeConfig(n_jobs=1)  # the reference's grids and search spaces
    holder: dict = {}
    for task in tasks:
        prepared, X, codes = features(params, task, args.layer, sae_path, holder)
        y = prepared["label"].to_numpy()
        split = prepared["split"].to_numpy()
        pools = {s: np.flatnonzero(split == s) for s in ("train", "test", "ood")}
        for regime in args.regimes:
            rcfg = regimes[regime]
            for level in [None] if regime in ("normal", "shift") else rcfg.levels:
                for seed in range(args.seeds):
                    try:
                        s = sample(
                            regime,
                            level,
                            rcfg,
                            y,
                            train_pool=pools["train"],
                            test_pool=pools["test"],
                            ood_pool=pools["ood"],
                            seed=seed,
                        )
                    except Infeasible:
                        continue
                    ctx = FitContext(cfg=cfg, seed=seed, n_classes=2)
                    for method in methods:
                        F = codes if method.startswith("sae_") else X
                        X_tr, X_te, y_tr = F[s.train], F[s.test], s.train_labels
                        start = time.perf_counter()
                        fit = fit_method(method, X_tr, y_tr, X_te, ctx)
                        mid = time.perf_counter()
                        ref_auc = reference_fit(ref, method, X_tr, y_tr, X_te, y[s.test], seed)
                        end = time.perf_counter()
                        key = (method, regime)
                        diffs[key].append(abs(auc(y[s.test], fit.proba) - ref_auc))
                        if args.verbose:
                            print(
                                f"  {task} {regime} {level} {seed} {method}: "
                                f"|dAUC| {diffs[key][-1]:.4f}",
                                flush=True,
                            )
                        seconds[key][0] += mid - start
                        seconds[key][1] += end - mid
                print(f"{task} {regime} {level}: done", flush=True)


def report(args, methods, diffs, seconds) -> None:
    print(
        f"\n{'method':14s} {'regime':10s} {'fits':>5s} {'mean|dAUC|':>11s} {'max|dAUC|':>10s}"
        f" {'ours s':>8s} {'ref s':>8s} {'ref/ours':>8s}"
    )
    for method in methods:
        for regime in args.regimes:
            d = diffs.get((method, regime))
            if not d:
                continue
            ours_s, ref_s = seconds[(method, regime)]
            print(
                f"{method:14s} {regime:10s} {len(d):5d} {np.mean(d):11.4f} {np.max(d):10.4f}"
                f" {ours_s:8.1f} {ref_s:8.1f} {speedup(ours_s, ref_s):7.2f}x"
            )
    groups = {method: [key for key in diffs if key[0] == method] for method in methods}
    groups["all methods"] = list(diffs)
    for name, keys in groups.items():
        all_d = [v for key in keys for v in diffs[key]]
        if not all_d:
            continue
        ours_s = sum(seconds[key][0] for key in keys)
        ref_s = sum(seconds[key][1] for key in keys)
        print(
            f"{name:14s} all regimes: mean |dAUC| {np.mean(all_d):.4f} over {len(all_d)}, "
            f"{ours_s:.1f} s against {ref_s:.1f} s: {speedup(ours_s, ref_s):.2f}x"
        )


def speedup(ours_s: float, ref_s: float) -> float:
    return ref_s / max(ours_s, 1e-9)


if __name__ == "__main__":
    main()
