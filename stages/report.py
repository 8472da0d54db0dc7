"""report: the data set metrics, the headline metrics and reports/report.html, from every
output of the run that exists."""

from saeprobe import config
from saeprobe.io import atomic_outputs, json_text
from saeprobe.report.data import data_metrics
from saeprobe.report.headline import headline
from saeprobe.report.outputs import collect
from saeprobe.report.page import render_report, vega_scripts
from saeprobe.stage import HEADLINE, METRICS, REPORT_PAGE, activations_dir, prepared_path, run


def main() -> None:
    params = config.load_params()
    names = config.dataset_names(params)
    unintended = config.unintended_config(params)
    per_dataset = data_metrics(
        {n: prepared_path(n) for n in names}, {n: activations_dir(n) for n in names}
    )
    outputs = collect(
        finetuned=config.finetune_datasets(params),
        probe_datasets=config.probe_datasets(params),
        layers=config.layers(params),
        selfreg_pairs=[(n, layer) for n in unintended.benchmarks for layer in unintended.layers],
        transfer_pairs=list(config.transfer_config(params).pairs),
        multitoken_datasets=config.multitoken_config(params).datasets,
        cross_model_datasets=config.cross_model_config(params).datasets,
    )
    outputs.data = per_dataset
    page = render_report(outputs, vega_scripts())
    with atomic_outputs(METRICS, HEADLINE, REPORT_PAGE) as (metrics, head, html):
        metrics.write_text(json_text(per_dataset))
        head.write_text(json_text(headline(outputs)))
        html.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    run(main)
