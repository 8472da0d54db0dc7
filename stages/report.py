"""report: reports/metrics.json with per-data-set counts and extraction figures."""

from saeprobe import config
from saeprobe.io import write_json
from saeprobe.reports import data_metrics, totals
from saeprobe.stage import REPORTS, activations_dir, prepared_path, run


def main() -> None:
    params = config.load_params()
    names = sorted(params.get("datasets") or {})
    per_dataset = data_metrics(
        names,
        {n: prepared_path(n) for n in names},
        {n: activations_dir(n) for n in names},
    )
    write_json(REPORTS / "metrics.json", {"total": totals(per_dataset), "datasets": per_dataset})


if __name__ == "__main__":
    run(main)
