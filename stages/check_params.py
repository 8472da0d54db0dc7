"""check_params: validate the whole of params.yaml before any other stage runs.

Every other stage is downstream of this one, so a mistake anywhere in params (a misspelled
section, an unknown method, a published SAE for a layer that is not extracted) stops
`dvc repro` here, before DVC removes the output of the stage the mistake would break. Its
output is a constant marker: a params change that stays valid reruns nothing downstream."""

from saeprobe import config
from saeprobe.io import write_json
from saeprobe.stage import PARAMS_VALID, run


def main() -> None:
    config.validate_all(config.load_params())
    write_json(PARAMS_VALID, {"params": "valid"})


if __name__ == "__main__":
    run(main)
