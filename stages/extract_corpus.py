"""extract_corpus: token activations of the SAE pretraining corpus."""

from saeprobe import config
from saeprobe.data import read_prepared
from saeprobe.extract import extract_dataset
from saeprobe.models import load_model
from saeprobe.stage import CORPUS_ACTIVATIONS, CORPUS_TEXTS, run


def main() -> None:
    params = config.load_params()
    df = read_prepared(CORPUS_TEXTS)
    model = load_model(config.model_config(params))
    extract_dataset(
        model,
        df["text"].to_list(),
        df["id"].to_list(),
        config.extract_config(params),
        CORPUS_ACTIVATIONS,
    )


if __name__ == "__main__":
    run(main)
