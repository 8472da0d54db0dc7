"""probe@<data set>: every probe, representation and regime of one data set."""

import logging

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import atomic_path, write_json
from saeprobe.probes.inputs import load_representations
from saeprobe.probes.sweep import run_sweep
from saeprobe.stage import features_path, pooled_path, prepared_path, probes_path, run, timing_path


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.probe_config(params)
    regimes = config.regime_configs(params)
    prepared = read_prepared(prepared_path(name))
    reps = load_representations(
        prepared,
        pooled_path=pooled_path(name),
        feature_path=lambda layer: features_path(name, layer),
        layers=config.layers(params),
        cfg=cfg,
    )
    results, seconds = run_sweep(
        name, prepared, reps, cfg, regimes, config.seed(params), logging.getLogger("probe").info
    )
    with atomic_path(probes_path(name)) as tmp:
        results.write_parquet(tmp)
    write_json(timing_path("probe", name), {"seconds": seconds})


if __name__ == "__main__":
    run(main)
