"""probe_report: one results table for every fit, per-regime metrics and the plot data."""

import polars as pl

from saeprobe import config
from saeprobe.io import atomic_path, write_json
from saeprobe.probes.summary import (
    binarized_bars,
    layer_curve,
    level_curve,
    sae_k_curve,
    summarize,
)
from saeprobe.stage import REPORTS, probes_path, run

PLOTS = REPORTS / "plots"


def write_csv(df: pl.DataFrame, name: str) -> None:
    with atomic_path(PLOTS / f"{name}.csv") as tmp:
        df.write_csv(tmp)


def main() -> None:
    params = config.load_params()
    names = sorted(params.get("datasets") or {})
    results = pl.concat([pl.read_parquet(probes_path(n)) for n in names])
    with atomic_path(REPORTS / "probes" / "results.parquet") as tmp:
        results.write_parquet(tmp)
    metrics = summarize(results, config.probe_config(params).bootstrap, config.seed(params))
    for regime in config.regime_configs(params):
        write_json(REPORTS / "probes" / f"{regime}.json", metrics.get(regime, {}))
    for regime in ("scarcity", "imbalance", "noise"):
        write_csv(level_curve(results, regime), regime)
    write_csv(layer_curve(results), "layers")
    write_csv(sae_k_curve(results), "sae_k")
    write_csv(binarized_bars(results), "binarized")


if __name__ == "__main__":
    run(main)
