"""train_sae@<layer>: pretrain an SAE on the corpus (or load a published one), evaluate its
reconstruction of the held-out tokens."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.sae.run import LayerData, SAEOutputs, pretrain_layer
from saeprobe.stage import CORPUS_ACTIVATIONS, CORPUS_TEXTS, layer_arg, run, sae_dir, sae_report
from saeprobe.store import TokenStore


def main(layer: str) -> None:
    params = config.load_params()
    layer = layer_arg(layer)
    with TokenStore(CORPUS_ACTIVATIONS / "tokens.h5") as store:
        pretrain_layer(
            LayerData(store, layer, read_prepared(CORPUS_TEXTS)),
            cfg=config.sae_train_config(params),
            model_cfg=config.model_config(params),
            eval_cfg=config.sae_card_config(params),
            seed=config.seed(params),
            outputs=SAEOutputs(sae_dir(layer), sae_report(layer)),
        )


if __name__ == "__main__":
    run(main)
