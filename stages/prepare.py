"""prepare@<name>: one data set from its source to data/prepared/<name>.parquet."""

from saeprobe import config
from saeprobe.data.prepare import prepare_dataset
from saeprobe.io import atomic_path
from saeprobe.stage import prepared_path, run


def main(name: str) -> None:
    params = config.load_params()
    df = prepare_dataset(name, config.dataset_config(params, name), config.seed(params))
    with atomic_path(prepared_path(name)) as tmp:
        df.write_parquet(tmp)


if __name__ == "__main__":
    run(main)
