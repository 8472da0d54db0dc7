"""features@<data set>-<layer>: pooled SAE codes of every document, stored sparse."""

from saeprobe import config
from saeprobe.features import encode_documents, sae_fingerprint, sae_task_docs
from saeprobe.sae import load_sae
from saeprobe.stage import features_path, layer_arg, run, sae_variant_dir, tokens_path
from saeprobe.store import TokenStore, write_feature_file


def main(name: str, layer: str) -> None:
    params = config.load_params()
    cfg = config.features_config(params)
    layer = layer_arg(layer)
    by_sae, task_docs = {}, {}
    with TokenStore(tokens_path(name)) as store:
        for variant in cfg.saes:
            folder = sae_variant_dir(name, layer, variant)
            sae = load_sae(folder, d_in=store.d_model)
            codes = encode_documents(sae, store, layer, cfg.pooling, cfg.top_n)
            by_sae[variant] = (sae_fingerprint(folder), codes)
            task_docs[variant] = sae_task_docs(folder)
        doc_ids = store.doc_ids
    write_feature_file(features_path(name, layer), doc_ids, by_sae, task_docs)


if __name__ == "__main__":
    run(main)
