"""features@<data set>-<layer>: pooled SAE codes of every document, stored sparse."""

import h5py
import numpy as np

from saeprobe import config
from saeprobe.features import encode_documents, sae_fingerprint, write_features
from saeprobe.io import atomic_path
from saeprobe.sae import load_sae
from saeprobe.stage import activations_dir, features_path, run, sae_variant_dir
from saeprobe.store import TokenStore


def main(name: str, layer: str) -> None:
    params = config.load_params()
    cfg = config.features_config(params)
    layer = int(layer)
    with (
        TokenStore(activations_dir(name) / "tokens.h5") as store,
        atomic_path(features_path(name, layer)) as tmp,
        h5py.File(tmp, "w") as h5,
    ):
        h5.create_dataset(
            "doc_ids", data=np.asarray(store.doc_ids, dtype=object), dtype=h5py.string_dtype()
        )
        for variant in cfg.saes:
            folder = sae_variant_dir(name, layer, variant)
            sae = load_sae(folder, d_in=store.d_model)
            features = encode_documents(sae, store, layer, cfg.pooling, cfg.top_n)
            write_features(h5, variant, sae_fingerprint(folder), features)


if __name__ == "__main__":
    run(main)
