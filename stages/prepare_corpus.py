"""prepare_corpus: the SAE pretraining texts, with every evaluation text removed."""

import polars as pl

from saeprobe import config
from saeprobe.data.corpus import prepare_corpus
from saeprobe.data.sources import load_source
from saeprobe.io import atomic_path
from saeprobe.stage import CORPUS_TEXTS, run


def main() -> None:
    params = config.load_params()
    exclude: set[str] = set()
    for name in params.get("datasets") or {}:
        raw = load_source(config.dataset_config(params, name), f"datasets.{name}")
        exclude |= set(raw.filter(pl.col("text").is_not_null())["text"].to_list())
    df = prepare_corpus(config.corpus_config(params), exclude, config.seed(params))
    with atomic_path(CORPUS_TEXTS) as tmp:
        df.write_parquet(tmp)


if __name__ == "__main__":
    run(main)
