"""classifier@<data set>: the best top-k SAE probe of the sweep, refit on every training
document and saved for `saeprobe predict` and `saeprobe explain`."""

import numpy as np
import polars as pl

from saeprobe import config
from saeprobe.classifier import Classifier, ClassifierInfo, save_classifier
from saeprobe.data.schema import read_prepared
from saeprobe.io import write_json
from saeprobe.probes.choice import choose_probe, train_classifier
from saeprobe.probes.inputs import align
from saeprobe.probes.methods import FitContext
from saeprobe.stage import (
    classifier_metrics_path,
    classifier_path,
    features_path,
    prepared_path,
    probes_path,
    run,
    sae_variant_dir,
    tokens_path,
)
from saeprobe.store import FeatureFile, TokenStore


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.probe_config(params)
    model_cfg = config.model_config(params)
    prepared = read_prepared(prepared_path(name))
    choice = choose_probe(pl.read_parquet(probes_path(name)), cfg.sae_pooling, name)
    features = FeatureFile(features_path(name, choice.layer))
    rows = align(features.doc_ids, prepared["id"].to_list(), str(features.path))
    codes = features.matrix(choice.sae, cfg.sae_pooling)[rows]
    labels = prepared["label"].to_numpy()
    ctx = FitContext(cfg=cfg, seed=config.seed(params), n_classes=int(labels.max()) + 1)
    latents, coef, intercept, classes, fit_params, test_auc = train_classifier(
        choice, codes, labels, prepared["split"].to_numpy(), ctx
    )
    names = dict(prepared.select("label", "label_name").unique().iter_rows())
    with TokenStore(tokens_path(name)) as store:
        max_length = store.max_length
    info = ClassifierInfo(
        dataset=name,
        model=str(model_cfg.name),
        dtype=model_cfg.dtype,
        max_length=max_length,
        layer=choice.layer,
        sae=choice.sae,
        sae_dir=str(sae_variant_dir(name, choice.layer, choice.sae)),
        sae_fingerprint=features.fingerprints[choice.sae],
        pooling=cfg.sae_pooling,
        method=choice.method,
        C=float(fit_params["C"]),
        label_names=[str(names.get(i, i)) for i in range(ctx.n_classes)],
        val_auc=choice.val_auc,
        test_auc=test_auc,
        n_train=int((prepared["split"] == "train").sum()),
    )
    save_classifier(
        classifier_path(name), Classifier(info, latents, coef, intercept, np.asarray(classes))
    )
    write_json(
        classifier_metrics_path(name),
        {
            "layer": info.layer,
            "sae": info.sae,
            "method": info.method,
            "val_auc": info.val_auc,
            "test_auc": info.test_auc,
            "latents": len(latents),
            "nonzero_weights": int(np.count_nonzero(coef)),
        },
    )


if __name__ == "__main__":
    run(main)
