"""Both data sets' probe inputs for one transfer pair, row-aligned with their prepared
tables: the raw text, and per layer the pooled hidden states, the SAE codes and MOSAIC's
binarized top-n counts. Each SAE encodes both data sets: the pretrained SAE, and the SAE
fine-tuned on the *source* (its task's unlabeled texts only), never one fine-tuned on the
target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from saeprobe.config import ProbeConfig, TransferConfig
from saeprobe.features import encode_documents, sae_task_docs
from saeprobe.probes.inputs import align
from saeprobe.probes.sweep import Representation
from saeprobe.sae import load_sae
from saeprobe.store import TokenStore, read_pooled
from saeprobe.transfer.fit import PairedRepresentation


def text_of(prepared: pl.DataFrame) -> np.ndarray:
    return np.asarray(prepared["text"].to_list(), dtype=object)


def pooled_rows(path: Path, layer: int, pooling: str, prepared: pl.DataFrame) -> np.ndarray:
    ids, X = read_pooled(path, layer, pooling)
    return X[align(ids, prepared["id"].to_list(), str(path))]


def sae_codes(
    sae_folder: Path, tokens: Path, layer: int, probe: ProbeConfig, prepared: pl.DataFrame
) -> dict[str, sp.csr_matrix]:
    """One data set's pooled codes (probe.sae_pooling and the top-n counts)."""
    with TokenStore(tokens) as store:
        sae = load_sae(sae_folder, d_in=store.d_model)
        codes = encode_documents(sae, store, layer, [probe.sae_pooling, "topn"], probe.mosaic_top_n)
        rows = align(store.doc_ids, prepared["id"].to_list(), str(tokens))
    return {pooling: matrix[rows] for pooling, matrix in codes.items()}


def load_representations(
    table: pl.DataFrame,
    *,
    pooled: Path,
    tokens: Path,
    sae_folder: Callable[[int, str], Path],
    layers: list[int],
    cfg: TransferConfig,
    probe: ProbeConfig,
) -> list[Representation]:
    """One data set's probe inputs, row-aligned with `table`: its text; per layer the pooled
    hidden states, and per SAE variant (`sae_folder(layer, variant)`) the codes at
    probe.sae_pooling and MOSAIC's binarized top-n counts."""
    reps = [Representation(-1, "text", text_of(table))]
    for layer in layers:
        pooling = probe.hidden_pooling
        reps.append(
            Representation(layer, "hidden", pooled_rows(pooled, layer, pooling, table), pooling)
        )
        for variant in cfg.saes:
            folder = sae_folder(layer, variant)
            codes = sae_codes(folder, tokens, layer, probe, table)
            name, task_docs = f"sae_{variant}", sae_task_docs(folder)
            main = probe.sae_pooling
            reps.append(Representation(layer, name, codes[main], main, task_docs=task_docs))
            for n in probe.mosaic_top_n:
                for threshold in probe.mosaic_thresholds:
                    binarized = sp.csr_matrix((codes[f"top{n}"] > threshold).astype(np.float32))
                    reps.append(
                        Representation(
                            layer,
                            name,
                            binarized,
                            f"top{n}>{threshold:g}",
                            comparison=True,
                            mosaic=True,
                            task_docs=task_docs,
                        )
                    )
    return reps


def load_paired_representations(
    source: pl.DataFrame,
    target: pl.DataFrame,
    *,
    pooled: tuple[Path, Path],
    tokens: tuple[Path, Path],
    sae_folder: Callable[[int, str], Path],
    layers: list[int],
    cfg: TransferConfig,
    probe: ProbeConfig,
) -> list[PairedRepresentation]:
    """`pooled` and `tokens` name the source's file first; `sae_folder(layer, variant)`
    the saved SAE of a variant (pretrained, or fine-tuned on the source), which encodes
    both data sets."""
    common = {"sae_folder": sae_folder, "layers": layers, "cfg": cfg, "probe": probe}
    sources = load_representations(source, pooled=pooled[0], tokens=tokens[0], **common)
    targets = load_representations(target, pooled=pooled[1], tokens=tokens[1], **common)
    return [PairedRepresentation(s, t.X) for s, t in zip(sources, targets, strict=True)]
