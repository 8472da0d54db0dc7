"""cross_model@<data set>: probes on the main model's hidden states, SAE codes, top-n counts
and tf-idf predict whether the second model answers each item right, beside a probe on the
second model's own hidden states (MOSAIC's cross-model setting)."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import atomic_path, write_json
from saeprobe.stage import (
    behaviour_path,
    cross_model_path,
    cross_model_plot,
    cross_model_report,
    pooled_path,
    prepared_path,
    run,
    sae_variant_dir,
    tokens_path,
)
from saeprobe.transfer.behaviour_io import read_behaviour
from saeprobe.transfer.crossmodel import (
    behaviour_dataset,
    behaviour_labels,
    best_by_family,
    own_representations,
    plot_rows,
    run_cross_model,
    summarize_cross_model,
)
from saeprobe.transfer.inputs import load_representations


def main(name: str) -> None:
    params = config.load_params()
    model, own_layers = config.second_model(params)
    cfg = config.transfer_fitting_config(params)
    probe = config.probe_config(params)
    prepared = read_prepared(prepared_path(name))
    where = str(behaviour_path(name))
    behaviour = read_behaviour(behaviour_path(name))
    y = behaviour_labels(prepared, behaviour, where)
    reps = load_representations(
        prepared,
        pooled=pooled_path(name),
        tokens=tokens_path(name),
        sae_folder=lambda layer, variant: sae_variant_dir(name, layer, variant),
        layers=config.layers(params),
        cfg=cfg,
        probe=probe,
    )
    reps += own_representations(behaviour, model, own_layers, where)
    results = run_cross_model(name, prepared, y, reps, model, cfg, probe, config.seed(params))
    with atomic_path(cross_model_path(name)) as tmp:
        results.write_parquet(tmp)
    summary = summarize_cross_model(results, model)
    write_json(
        cross_model_report(name),
        {
            "task": behaviour_dataset(name, model),
            "second_model": model,
            "share_correct": float(y.mean()),
            "n_train": int(results["n_train"].max()),
            "n_test": int(results["n_test"].max()),
            "best_by_family": best_by_family(summary),
            "settings": summary,
        },
    )
    with atomic_path(cross_model_plot(name)) as tmp:
        plot_rows(summary).write_csv(tmp)


if __name__ == "__main__":
    run(main)
