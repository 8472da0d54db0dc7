"""extract@<name>: token-level and pooled activations of one data set."""

from saeprobe import config
from saeprobe.data import read_prepared
from saeprobe.extract import extract_dataset
from saeprobe.models import load_model
from saeprobe.stage import activations_dir, prepared_path, run


def main(name: str) -> None:
    params = config.load_params()
    extract_cfg = config.extract_config(params)
    df = read_prepared(prepared_path(name))
    model = load_model(config.model_config(params))
    extract_dataset(
        model, df["text"].to_list(), df["id"].to_list(), extract_cfg, activations_dir(name)
    )


if __name__ == "__main__":
    run(main)
