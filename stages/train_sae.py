"""train_sae@<layer>: pretrain an SAE on the corpus (or load a published one), evaluate it."""

from saeprobe import config
from saeprobe.data import read_prepared
from saeprobe.sae.run import pretrain_layer
from saeprobe.stage import CORPUS_ACTIVATIONS, CORPUS_TEXTS, run, sae_dir, sae_report
from saeprobe.store import TokenStore


def main(layer: str) -> None:
    params = config.load_params()
    layer = int(layer)
    with TokenStore(CORPUS_ACTIVATIONS / "tokens.h5") as store:
        pretrain_layer(
            layer,
            store,
            read_prepared(CORPUS_TEXTS),
            config.sae_train_config(params),
            config.model_config(params),
            config.sae_eval_config(params),
            config.extract_config(params).max_length,
            config.seed(params),
            sae_dir(layer),
            sae_report(layer),
        )


if __name__ == "__main__":
    run(main)
