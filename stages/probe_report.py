"""probe_report: one results table for every fit (transfer, cross-model and multi-token fits
too), the per-regime metrics and the plot data."""

from saeprobe import config
from saeprobe.probes.report import write_probe_report
from saeprobe.stage import (
    PLOTS,
    PROBE_METRICS,
    PROBE_RESULTS,
    cross_model_path,
    multitoken_path,
    probes_path,
    run,
    transfer_path,
)


def main() -> None:
    params = config.load_params()
    cfg = config.probe_report_config(params)
    write_probe_report(
        [probes_path(name) for name in config.probe_datasets(params)],
        results_path=PROBE_RESULTS,
        metrics_path=PROBE_METRICS,
        plots_dir=PLOTS,
        n_boot=cfg.bootstrap,
        seed=config.seed(params),
        cfg=cfg,
        extra_files=[transfer_path(pair) for pair in config.transfer_config(params).pairs]
        + [cross_model_path(name) for name in config.cross_model_config(params).datasets]
        + [multitoken_path(name) for name in config.multitoken_config(params).datasets],
    )


if __name__ == "__main__":
    run(main)
