"""probe@<data set>: every probe, representation and regime of one data set."""

import logging

from saeprobe import config
from saeprobe.data import read_prepared
from saeprobe.io import atomic_path
from saeprobe.probes import run_sweep
from saeprobe.probes.inputs import load_representations
from saeprobe.stage import (
    activations_dir,
    features_path,
    prepared_path,
    probes_path,
    run,
    sae_variant_dir,
)


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.probe_config(params)
    features = config.features_config(params)
    prepared = read_prepared(prepared_path(name))
    reps = load_representations(
        prepared,
        activations_dir(name) / "pooled.parquet",
        lambda layer: features_path(name, layer),
        lambda layer, variant: sae_variant_dir(name, layer, variant),
        config.extract_config(params).layers,
        cfg,
        features.binarize_threshold,
    )
    results = run_sweep(
        name,
        prepared,
        reps,
        cfg,
        config.regime_configs(params),
        config.seed(params),
        logging.getLogger("probe").info,
    )
    with atomic_path(probes_path(name)) as tmp:
        results.write_parquet(tmp)


if __name__ == "__main__":
    run(main)
