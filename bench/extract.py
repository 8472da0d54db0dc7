"""Throughput of the extract code path against a bare forward pass, and its peak memory.

    python bench/extract.py [--model gemma3-270m] [--docs 500] [--layers 6 12]

In one process and on the same length-sorted batches, it times (a) `model(**batch)` alone
and (b) `extract_dataset`, which adds hooks, pooling and the HDF5/Parquet writes, and prints
tokens/s of each and their ratio. It then runs extraction alone in fresh processes on 500
and on 2,000 documents and prints each one's peak RSS: streaming keeps the two close.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from saeprobe.config import DatasetConfig, ExtractConfig, ModelConfig
from saeprobe.data.prepare import prepare_dataset
from saeprobe.extract import extract_dataset, length_batches, pad_batch, tokenize
from saeprobe.models import load_model


def texts(n: int) -> tuple[list[str], list[str]]:
    df = prepare_dataset("bench", DatasetConfig(source="sae_probes", task="92_glue_sst2"), 0)
    df = df.head(n)
    return df["text"].to_list(), df["id"].to_list()


def bare_forward(model, docs: list[str], ids: list[str], cfg: ExtractConfig) -> tuple[int, float]:
    tokens = tokenize(model, docs, ids, cfg.max_length)
    batches = length_batches([len(x) for x in tokens.ids], cfg.batch_tokens, cfg.max_batch_size)
    padded = [pad_batch(model, tokens, b) for b in batches]
    n_tokens = sum(int(attention.sum()) for _, attention, _ in padded)
    start = time.perf_counter()
    with torch.inference_mode():
        for input_ids, attention, _ in padded:
            model.model(
                input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)
            )
    return n_tokens, time.perf_counter() - start


def peak_rss_child(args: argparse.Namespace, n_docs: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--docs",
        str(n_docs),
        "--model",
        args.model,
        "--layers",
        *map(str, args.layers),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = ExtractConfig(layers=args.layers)
    model = load_model(ModelConfig(name=args.model))
    docs, ids = texts(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        if args.child:
            extract_dataset(model, docs, ids, cfg, Path(tmp) / "acts", progress=False)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({"peak_rss_mib": round(peak, 1)}))
            return
        bare_forward(model, docs[:32], ids[:32], cfg)  # warm-up
        n_tokens, bare_s = bare_forward(model, docs, ids, cfg)
        stats = extract_dataset(model, docs, ids, cfg, Path(tmp) / "acts", progress=False)
    bare_tps, extract_tps = n_tokens / bare_s, stats["tokens"] / stats["seconds"]
    print(
        f"model {args.model}, {args.docs} docs, {n_tokens} tokens, layers {args.layers}, "
        f"{model.dtype} on {model.device}, {torch.get_num_threads()} threads"
    )
    print(f"bare forward   {bare_tps:10,.0f} tokens/s")
    print(f"extract path   {extract_tps:10,.0f} tokens/s (hooks, pooling, HDF5 and Parquet writes)")
    print(f"ratio extract/bare: {extract_tps / bare_tps:.2f}")
    for n in (500, 2000):
        print(f"peak RSS, extraction of {n:5d} docs: {peak_rss_child(args, n):8.1f} MiB")


if __name__ == "__main__":
    main()
