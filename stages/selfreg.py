"""selfreg@<data set>-<layer>: the classifier kept from the unintended latents, against the
unregularized classifier and its regularized baselines, over seeds."""

import logging

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.regularization.experiment import SELFREG, run_methods, summarize_methods
from saeprobe.regularization.inputs import check_sae_matches, load_split, read_unintended
from saeprobe.regularization.report import write_selfreg_outputs
from saeprobe.sae import load_sae
from saeprobe.stage import (
    activation_stats_path,
    layer_arg,
    pooled_path,
    prepared_path,
    run,
    sae_dir,
    selfreg_path,
    selfreg_plots,
    selfreg_report,
    unintended_path,
)


def main(name: str, layer: str) -> None:
    params = config.load_params()
    cfg = config.selfreg_config(params)
    base_seed = config.seed(params)
    layer = layer_arg(layer)
    where = f"selfreg@{name}-{layer}"
    sae = load_sae(sae_dir(layer, name) / "sae")
    check_sae_matches(sae, layer, activation_stats_path(name), where)
    split, _ = load_split(
        read_prepared(prepared_path(name)), pooled_path(name), layer, cfg.pooling, where
    )
    unintended = read_unintended(unintended_path(name, layer))
    methods = cfg.methods
    if len(unintended) == 0:
        methods = [m for m in methods if m not in SELFREG]
        logging.getLogger("selfreg").warning(
            "%s: no latent was marked unintended; only the baselines run (self-regularization "
            "would be the plain classifier), and the metrics say empty_unintended",
            where,
        )
    results = run_methods(
        split,
        sae,
        unintended,
        methods,
        cfg.lambdas,
        [base_seed + i for i in range(cfg.seeds)],
        cfg.classifier,
        cfg.baselines,
    )
    write_selfreg_outputs(
        results,
        summarize_methods(results),
        len(unintended),
        results_path=selfreg_path(name, layer),
        metrics_path=selfreg_report(name, layer, "metrics"),
        plots_dir=selfreg_plots(name, layer),
    )


if __name__ == "__main__":
    run(main)
