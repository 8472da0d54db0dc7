"""extract_corpus: token activations of the SAE pretraining corpus."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.extract import extract_dataset
from saeprobe.io import write_json
from saeprobe.models import load_model
from saeprobe.stage import CORPUS_ACTIVATIONS, CORPUS_TEXTS, run, timing_path


def main() -> None:
    params = config.load_params()
    extract_cfg = config.extract_config(params)
    df = read_prepared(CORPUS_TEXTS)
    model = load_model(config.model_config(params))
    stats = extract_dataset(
        model, df["text"].to_list(), df["id"].to_list(), extract_cfg, CORPUS_ACTIVATIONS
    )
    write_json(timing_path("extract", "corpus"), stats)


if __name__ == "__main__":
    run(main)
