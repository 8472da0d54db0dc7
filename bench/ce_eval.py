"""The SAE's spliced-in LM loss: the LM head on target positions only against the head on
every position (the full logits), on the same documents and SAE.

    python bench/ce_eval.py [--dataset spam] [--layer 6] [--docs 32] [--root .]

Reads the prepared data set and the SAE fine-tuned on it from a `make repro` run, and prints
both wall times, their ratio and both CE figures (which must agree)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
from transformers import AutoModelForCausalLM

from saeprobe import config
from saeprobe.models import load_model
from saeprobe.sae.evaluate import ce_loss_recovered
from saeprobe.sae.io import load_sae


class FullLogits:
    """The model seen without get_decoder: spliced_ce then takes the full logits."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        if name == "get_decoder":
            raise AttributeError(name)
        return getattr(self._model, name)

    def __call__(self, *args, **kwargs):
        return self._model(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--dataset", default="spam")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--docs", type=int, default=32)
    args = parser.parse_args()
    params = config.load_params(args.root / "params.yaml")
    prepared = pl.read_parquet(args.root / f"data/prepared/{args.dataset}.parquet")
    texts = prepared.filter(pl.col("split") == "test")["text"].head(args.docs).to_list()
    sae = load_sae(args.root / f"data/sae/L{args.layer}/{args.dataset}/sae")
    lm = load_model(config.model_config(params), AutoModelForCausalLM)
    max_length = config.extract_config(params).max_length
    results = {}
    for name, model in (("targets only", lm.model), ("full logits", FullLogits(lm.model))):
        lm.model = model
        start = time.perf_counter()
        results[name] = ce_loss_recovered(lm, sae, args.layer, texts, max_length)
        results[name]["seconds"] = time.perf_counter() - start
    for name, r in results.items():
        print(
            f"{name:13s} {r['seconds']:7.1f} s  CE clean {r['ce_clean']:.5f} sae {r['ce_sae']:.5f}"
            f" zero {r['ce_zero']:.5f}  recovered {r['ce_loss_recovered']:.5f}"
        )
    ratio = results["full logits"]["seconds"] / results["targets only"]["seconds"]
    print(f"speed-up of the head on targets only: {ratio:.2f}x over {len(texts)} documents")


if __name__ == "__main__":
    main()
