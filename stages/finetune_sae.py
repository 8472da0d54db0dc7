"""finetune_sae@<data set>-<layer>: adapt the pretrained SAE to one task's training tokens."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.sae.run import LayerData, SAEOutputs, finetune_layer
from saeprobe.stage import layer_arg, prepared_path, run, sae_dir, sae_report, tokens_path
from saeprobe.store import TokenStore


def main(name: str, layer: str) -> None:
    params = config.load_params()
    layer = layer_arg(layer)
    with TokenStore(tokens_path(name)) as store:
        finetune_layer(
            LayerData(store, layer, read_prepared(prepared_path(name))),
            pretrained=sae_dir(layer) / "sae",
            cfg=config.finetune_config(params),
            model_cfg=config.model_config(params),
            eval_cfg=config.sae_card_config(params),
            seed=config.seed(params),
            outputs=SAEOutputs(sae_dir(layer, name), sae_report(layer, name)),
        )


if __name__ == "__main__":
    run(main)
