"""benchmark_report: the full benchmark's results table, per-regime metrics and plot data,
summarized as probe_report summarizes the probe stages' (empty when no task is listed)."""

from saeprobe import config
from saeprobe.probes.report import write_probe_report
from saeprobe.stage import (
    BENCHMARK_METRICS,
    BENCHMARK_PLOTS,
    BENCHMARK_RESULTS,
    benchmark_path,
    run,
)


def main() -> None:
    params = config.load_params()
    cfg = config.benchmark_config(params)
    report = config.benchmark_report_config(params, cfg)
    write_probe_report(
        [benchmark_path(task) for task in cfg.tasks],
        results_path=BENCHMARK_RESULTS,
        metrics_path=BENCHMARK_METRICS,
        plots_dir=BENCHMARK_PLOTS,
        n_boot=report.bootstrap,
        seed=config.seed(params),
        cfg=report,
    )


if __name__ == "__main__":
    run(main)
