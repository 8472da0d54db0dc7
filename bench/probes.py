"""The normal-regime logistic-regression sweep against the sparse-probing reference.

    python bench/probes.py [--layer 6] [--seeds 3] [--root .]

For every binary data set of params.yaml it draws the normal regime's training set, then
fits the L2 probe on the same pooled hidden states with saeprobe (C grid with warm starts)
and with `find_best_reg` from the `sae-probes` package (its file is loaded directly: the
package's own imports need libraries saeprobe does not). Prints both wall times, their
ratio, and the mean |test AUC difference|. Run it after `make repro`.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from saeprobe import config
from saeprobe.config import ProbeConfig, RegimeConfig
from saeprobe.data.schema import read_prepared
from saeprobe.data.sources import package_dir
from saeprobe.probes.inputs import align
from saeprobe.probes.methods import FitContext, fit_method
from saeprobe.probes.validation import auc
from saeprobe.regimes import sample
from saeprobe.store import read_pooled


def reference_find_best_reg():
    path = package_dir("sae_probes", "pip install --no-deps sae-probes") / "utils_training.py"
    spec = importlib.util.spec_from_file_location("sae_probes_training", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_best_reg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    params = config.load_params(args.root / "params.yaml")
    find_best_reg = reference_find_best_reg()
    cfg = ProbeConfig(c_log10_range=[-5, 5], c_grid_size=10)  # the reference's grid
    ours_s = ref_s = 0.0
    diffs = []
    for name in sorted(params["datasets"]):
        prepared = read_prepared(args.root / "data/prepared" / f"{name}.parquet")
        y = prepared["label"].to_numpy()
        if y.max() > 1:
            continue
        ids, X = read_pooled(
            args.root / "data/activations" / name / "pooled.parquet", args.layer, "mean"
        )
        X = X[align(ids, prepared["id"].to_list(), name)].astype(np.float64)
        split = prepared["split"].to_numpy()
        for seed in range(args.seeds):
            s = sample(
                "normal",
                None,
                RegimeConfig(),
                y,
                train_pool=np.flatnonzero(split == "train"),
                test_pool=np.flatnonzero(split == "test"),
                ood_pool=np.array([], int),
                seed=seed,
            )
            ctx = FitContext(cfg=cfg, seed=seed, n_classes=2)
            start = time.perf_counter()
            fit = fit_method("logreg_l2", X[s.train], s.train_labels, X[s.test], ctx)
            ours_s += time.perf_counter() - start
            ours_auc = auc(y[s.test], fit.proba)
            start = time.perf_counter()
            ref = find_best_reg(X[s.train], s.train_labels, X[s.test], y[s.test], seed=seed)
            ref_s += time.perf_counter() - start
            diffs.append(abs(ours_auc - ref.metrics.test_auc))
            print(
                f"{name:12s} seed {seed}: n_train {len(s.train):4d}  AUC saeprobe "
                f"{ours_auc:.4f}  reference {ref.metrics.test_auc:.4f}"
            )
    print(f"saeprobe  {ours_s:8.2f} s")
    print(f"reference {ref_s:8.2f} s")
    print(
        f"speed-up reference/saeprobe: {ref_s / ours_s:.2f}x; mean |dAUC| {np.mean(diffs):.4f} "
        f"over {len(diffs)} fits"
    )


if __name__ == "__main__":
    main()
