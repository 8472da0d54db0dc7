"""report: reports/metrics.json with per-data-set counts and extraction figures."""

from saeprobe import config
from saeprobe.io import write_json
from saeprobe.reports import data_metrics
from saeprobe.stage import METRICS, activations_dir, prepared_path, run


def main() -> None:
    params = config.load_params()
    names = config.dataset_names(params)
    per_dataset = data_metrics(
        {n: prepared_path(n) for n in names}, {n: activations_dir(n) for n in names}
    )
    write_json(METRICS, per_dataset)


if __name__ == "__main__":
    run(main)
