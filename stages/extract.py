"""extract@<name>: token-level and pooled activations of one data set."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.extract import extract_dataset
from saeprobe.io import write_json
from saeprobe.models import load_model
from saeprobe.stage import activations_dir, prepared_path, run, timing_path


def main(name: str) -> None:
    params = config.load_params()
    extract_cfg = config.extract_config(params)
    df = read_prepared(prepared_path(name))
    model = load_model(config.model_config(params))
    stats = extract_dataset(
        model, df["text"].to_list(), df["id"].to_list(), extract_cfg, activations_dir(name)
    )
    write_json(timing_path("extract", name), stats)


if __name__ == "__main__":
    run(main)
