"""sae_ce@<layer>: the spliced-in LM loss of the layer's pretrained SAE (on the corpus's
held-out texts) and of each fine-tuned one (on its task's test texts), the language model
loaded once for all of them."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import write_json
from saeprobe.sae.run import ce_texts, lm_losses
from saeprobe.stage import CORPUS_TEXTS, layer_arg, prepared_path, run, sae_ce_report, sae_dir


def main(layer: str) -> None:
    params = config.load_params()
    layer = layer_arg(layer)
    n = config.ce_docs(params)
    saes = {"pretrained": (sae_dir(layer) / "sae", ce_texts(read_prepared(CORPUS_TEXTS), n))}
    for name in config.finetune_datasets(params):
        texts = ce_texts(read_prepared(prepared_path(name)), n)
        saes[name] = (sae_dir(layer, name) / "sae", texts)
    losses = lm_losses(config.model_config(params), layer, saes, config.max_length(params))
    write_json(sae_ce_report(layer), losses)


if __name__ == "__main__":
    run(main)
