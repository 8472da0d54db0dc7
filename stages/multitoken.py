"""multitoken@<data set>: the sparse-probing paper's multi-token probes (attention pooling,
the per-position PCA concatenation) on the cached token activations of multitoken.layers."""

from saeprobe import config
from saeprobe.data.schema import read_prepared
from saeprobe.io import atomic_path, write_json
from saeprobe.probes.multitoken import document_tokens, multitoken_fits, multitoken_summary
from saeprobe.stage import multitoken_path, multitoken_report, prepared_path, run, tokens_path
from saeprobe.store import TokenStore


def main(name: str) -> None:
    params = config.load_params()
    cfg = config.multitoken_config(params)
    prepared = read_prepared(prepared_path(name))
    ids = prepared["id"].to_list()
    with TokenStore(tokens_path(name)) as store:
        docs = {layer: document_tokens(store, layer, ids) for layer in cfg.layers}
    probe, normal = config.probe_config(params), config.normal_regime(params)
    results = multitoken_fits(name, prepared, docs, cfg, probe, normal, config.seed(params))
    with atomic_path(multitoken_path(name)) as tmp:
        results.write_parquet(tmp)
    write_json(multitoken_report(name), multitoken_summary(results))


if __name__ == "__main__":
    run(main)
