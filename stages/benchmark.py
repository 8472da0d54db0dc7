"""benchmark@<task>: one task of the sparse-probing paper's benchmark, prepared, encoded and
probed in every configured regime in one stage (a killed run resumes at the next task)."""

import logging
import time

from saeprobe import config
from saeprobe.benchmark import run_task
from saeprobe.io import atomic_path, write_json
from saeprobe.models import load_model
from saeprobe.sae import load_sae
from saeprobe.stage import benchmark_path, run, sae_dir, timing_path


def main(task: str) -> None:
    params = config.load_params()
    cfg = config.benchmark_task_config(params)
    start = time.perf_counter()
    model = load_model(config.model_config(params))
    sae = load_sae(sae_dir(cfg.layer) / "sae", d_in=model.d_model)
    loaded = round(time.perf_counter() - start, 3)
    results, timing = run_task(
        task,
        cfg,
        model=model,
        sae=sae,
        extract=config.benchmark_extract_config(params, cfg),
        probe=config.benchmark_probe_config(params, cfg),
        regimes=config.benchmark_regimes(params, cfg),
        seed=config.seed(params),
        progress=logging.getLogger("benchmark").info,
    )
    with atomic_path(benchmark_path(task)) as tmp:
        results.write_parquet(tmp)
    write_json(timing_path("benchmark", task), {"load_s": loaded, **timing})


if __name__ == "__main__":
    run(main)
