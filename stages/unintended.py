"""unintended@<data set>-<layer>: the judges mark latents of the SAE fine-tuned on the data
set that its classifier must not use."""

import polars as pl

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import atomic_outputs, json_text, write_json
from saeprobe.regularization.inputs import check_sae_matches, load_split
from saeprobe.regularization.unintended import (
    combine_decisions,
    judge_latents,
    judge_summary,
    latent_codes,
)
from saeprobe.sae import load_sae
from saeprobe.stage import (
    activation_stats_path,
    layer_arg,
    llm_cache_path,
    pooled_path,
    prepared_path,
    run,
    sae_dir,
    selfreg_report,
    unintended_path,
)


def main(name: str, layer: str) -> None:
    params = config.load_params()
    layer = layer_arg(layer)
    where = f"unintended@{name}-{layer}"
    judges = config.judges_config(params, name)
    combine = config.unintended_combine(params)
    endpoint = config.llm_endpoint_config(params)
    pooling = config.selfreg_pooling(params)
    folder = sae_dir(layer, name)
    sae = load_sae(folder / "sae")
    check_sae_matches(sae, layer, activation_stats_path(name), where)
    split, group = load_split(
        read_prepared(prepared_path(name)), pooled_path(name), layer, pooling, where
    )
    cards = pl.read_parquet(folder / "cards.parquet")
    cache = llm_cache_path(name, layer)
    table, status = judge_latents(
        judges,
        cards=cards,
        codes=latent_codes(sae, split.X_train),
        labels=split.y_train,
        group=group,
        endpoint=endpoint,
        cache_path=cache,
        where=where,
    )
    table = combine_decisions(table, cards, combine)
    # The cache is an output that persists between runs: it exists even when no judge asked.
    if not cache.exists():
        write_json(cache, {})
    report = selfreg_report(name, layer, "unintended")
    with atomic_outputs(unintended_path(name, layer), report) as (out, metrics):
        table.write_parquet(out)
        metrics.write_text(json_text(judge_summary(table, status)))


if __name__ == "__main__":
    run(main)
