"""prepare_corpus: the SAE pretraining texts, with every evaluation text removed."""

from saeprobe import config
from saeprobe.data.corpus import evaluation_texts, prepare_corpus
from saeprobe.io import atomic_path
from saeprobe.stage import CORPUS_TEXTS, run


def main() -> None:
    params = config.load_params()
    datasets = {name: config.dataset_config(params, name) for name in config.dataset_names(params)}
    df = prepare_corpus(
        config.corpus_config(params), evaluation_texts(datasets), config.seed(params)
    )
    with atomic_path(CORPUS_TEXTS) as tmp:
        df.write_parquet(tmp)


if __name__ == "__main__":
    run(main)
