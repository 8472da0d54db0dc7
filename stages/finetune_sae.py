"""finetune_sae@<data set>-<layer>: adapt the pretrained SAE to one task's training tokens."""

from saeprobe import config
from saeprobe.data import read_prepared
from saeprobe.sae.run import finetune_layer
from saeprobe.stage import activations_dir, prepared_path, run, sae_dir, sae_report
from saeprobe.store import TokenStore


def main(name: str, layer: str) -> None:
    params = config.load_params()
    layer = int(layer)
    with TokenStore(activations_dir(name) / "tokens.h5") as store:
        finetune_layer(
            layer,
            sae_dir(layer) / "sae",
            store,
            read_prepared(prepared_path(name)),
            config.finetune_config(params),
            config.model_config(params),
            config.sae_eval_config(params),
            config.extract_config(params).max_length,
            config.seed(params),
            sae_dir(layer, name),
            sae_report(layer, name),
        )


if __name__ == "__main__":
    run(main)
