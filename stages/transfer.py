"""transfer@<pair>: every probe trained on one data set, tested on its test split and on
the pair's other data set."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.errors import ConfigError
from saeprobe.io import atomic_path, write_json
from saeprobe.stage import (
    pooled_path,
    prepared_path,
    run,
    sae_variant_dir,
    tokens_path,
    transfer_path,
    transfer_plot,
    transfer_report,
)
from saeprobe.transfer.fit import run_transfer
from saeprobe.transfer.inputs import load_paired_representations
from saeprobe.transfer.split import source_name, target_name, transfer_target
from saeprobe.transfer.summary import plot_rows, summarize_transfer


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.transfer_config(params)
    probe = config.probe_config(params)
    if name not in cfg.pairs:
        raise ConfigError(
            f"params: 'transfer.pairs' has no pair '{name}'{config.suggest(name, cfg.pairs)}"
        )
    pair = cfg.pairs[name]
    source = read_prepared(prepared_path(pair.train))
    target_table = read_prepared(prepared_path(pair.test))
    target = transfer_target(source, target_table, pair, f"transfer.pairs.{name}")
    reps = load_paired_representations(
        source,
        target_table,
        pooled=(pooled_path(pair.train), pooled_path(pair.test)),
        tokens=(tokens_path(pair.train), tokens_path(pair.test)),
        sae_folder=lambda layer, variant: sae_variant_dir(pair.train, layer, variant),
        layers=config.layers(params),
        cfg=cfg,
        probe=probe,
    )
    results = run_transfer(pair, source, target, reps, cfg, probe, config.seed(params))
    with atomic_path(transfer_path(name)) as tmp:
        results.write_parquet(tmp)
    summary = summarize_transfer(results, pair)
    write_json(
        transfer_report(name),
        {
            "train": source_name(pair),
            "test": target_name(pair),
            "labels": pair.labels,
            "n_train": int(results["n_train"].max()),
            "n_test_in_distribution": int(
                results.filter(results["test_dataset"] == source_name(pair))["n_test"].max()
            ),
            "n_target": len(target.rows),
            "target_rows_sharing_a_source_text": target.overlap_dropped,
            "settings": summary,
        },
    )
    with atomic_path(transfer_plot(name)) as tmp:
        plot_rows(summary).write_csv(tmp)


if __name__ == "__main__":
    run(main)
