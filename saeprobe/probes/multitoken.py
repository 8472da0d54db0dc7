"""The sparse-probing paper's multi-token probes on the cached token activations
(run_multi_token_acts.py): the attention-pooling probe and the concatenation baseline
(`train_concat_baseline_on_model_acts`: a PCA per token position, joined, then the L1
probe). Both run in the normal regime on the probe stage's samples (same seeds, same
training sets), so their rows pair with its last-token rows; a data set with a shifted
split also scores each fit there (the shift regime trains on the normal sample too). The
max- and mean-pooled SAE codes with top-k selection, the paper's third multi-token probe,
are the probe stage's pooling comparison (BOS is never stored, so it is always skipped)."""

from __future__ import annotations

import numpy as np
import polars as pl
from joblib import delayed
from sklearn.decomposition import PCA

from saeprobe.config import MultiTokenConfig, ProbeConfig, RegimeConfig
from saeprobe.errors import Infeasible
from saeprobe.probes.attention import fit_attention_probe
from saeprobe.probes.methods import FitContext, fit_method
from saeprobe.probes.schema import results_frame
from saeprobe.probes.sweep import fit_summary, run_parallel, scores
from saeprobe.regimes import sample
from saeprobe.store import TokenStore

REPRESENTATION = "hidden_tokens"


def document_tokens(store: TokenStore, layer: int, doc_ids: list[str]) -> list[np.ndarray]:
    """Each document's content-token activations (tokens, d), in the order of `doc_ids`."""
    by_id: dict[str, np.ndarray] = {}
    for ids, offsets, x in store.iter_docs(layer):
        for i, doc_id in enumerate(ids):
            by_id[doc_id] = x[offsets[i] : offsets[i + 1]]
    return [by_id[doc_id] for doc_id in doc_ids]


def concat_pca_features(
    docs: list[np.ndarray], train: np.ndarray, components: int, positions: int | None
) -> np.ndarray:
    """Per content-token position j (the paper's positions 1.., after BOS), a PCA fit on
    the training documents' j-th token (zeros where a document is shorter) and applied to
    every document; the projections side by side. A position no training document reaches
    is skipped, as in the paper."""
    longest = max(len(doc) for doc in docs)
    positions = min(positions or longest, longest)
    d = docs[0].shape[1]
    parts = []
    for j in range(positions):
        at_j = np.zeros((len(docs), d), dtype=np.float32)
        for i, doc in enumerate(docs):
            if j < len(doc):
                at_j[i] = doc[j]
        if not at_j[train].any():
            continue
        # the full SVD: deterministic, as the PCA baseline of the probe stage
        pca = PCA(n_components=min(components, len(train), d), svd_solver="full")
        pca.fit(at_j[train])
        parts.append(pca.transform(at_j))
    if not parts:
        raise Infeasible("concat_pca: no token position holds a training document's token")
    return np.hstack(parts)


def multitoken_fits(
    dataset: str,
    prepared: pl.DataFrame,
    docs_by_layer: dict[int, list[np.ndarray]],
    cfg: MultiTokenConfig,
    probe: ProbeConfig,
    normal: RegimeConfig,
    base_seed: int,
) -> pl.DataFrame:
    """Every (layer, seed, method): one fit on the normal regime's sample (`normal`, the
    probe stage's regimes.normal, so the same training sets), scored on the test split and,
    where the data set has one, on the shifted split."""
    y = prepared["label"].to_numpy()
    split = prepared["split"].to_numpy()
    pools = {s: np.flatnonzero(split == s) for s in ("train", "test", "ood")}
    n_classes = int(y.max()) + 1
    tasks, skipped = [], []
    for s in range(normal.seeds):
        seed = base_seed + s
        try:
            drawn = sample(
                "normal",
                None,
                normal,
                y,
                train_pool=pools["train"],
                test_pool=pools["test"],
                ood_pool=pools["ood"],
                seed=seed,
            )
        except Infeasible as exc:
            skipped += [
                _row(dataset, layer, method, "normal", seed, [], pools["test"])
                | {"status": "skipped", "message": str(exc)}
                for layer in docs_by_layer
                for method in cfg.methods
            ]
            continue
        for layer, docs in docs_by_layer.items():
            for method in cfg.methods:
                tasks.append(
                    delayed(_fit)(
                        dataset, layer, method, seed, docs, y, drawn.train, pools, n_classes,
                        cfg, probe,
                    )
                )  # fmt: skip
    fitted = [row for rows in run_parallel(tasks, probe) for row in rows]
    return results_frame(skipped + fitted)


def _fit(
    dataset: str,
    layer: int,
    method: str,
    seed: int,
    docs: list[np.ndarray],
    y: np.ndarray,
    train: np.ndarray,
    pools: dict[str, np.ndarray],
    n_classes: int,
    cfg: MultiTokenConfig,
    probe: ProbeConfig,
) -> list[dict]:
    scored = {"normal": pools["test"], "shift": pools["ood"]}
    scored = {regime: rows for regime, rows in scored.items() if len(rows)}
    evaluated = np.concatenate(list(scored.values()))
    try:
        proba, params, val_auc = _fit_method(
            method, seed, docs, y, train, evaluated, n_classes, cfg, probe
        )
    except Infeasible as exc:
        return [
            _row(dataset, layer, method, regime, seed, train, test)
            | {"status": "skipped", "message": str(exc)}
            for regime, test in scored.items()
        ]
    rows, start = [], 0
    for regime, test in scored.items():
        part = proba[start : start + len(test)]
        start += len(test)
        rows.append(
            _row(dataset, layer, method, regime, seed, train, test)
            | fit_summary(params, val_auc)
            | scores(y[test], part)
        )
    return rows


def _fit_method(method, seed, docs, y, train, evaluated, n_classes, cfg, probe):
    """(probabilities on `evaluated`, fitted parameters, validation AUC) of one method."""
    if method == "attention":
        fitted = fit_attention_probe(
            [docs[i] for i in train], y[train], n_classes, cfg.attention, seed
        )
        proba = fitted.predict_proba([docs[i] for i in evaluated])
        return proba, {"step": fitted.step}, fitted.val_auc
    X = concat_pca_features(docs, train, cfg.concat_components, cfg.concat_positions)
    ctx = FitContext(cfg=probe, seed=seed, n_classes=n_classes)
    fit = fit_method("logreg_l1", X[train], y[train], X[evaluated], ctx)
    return fit.proba, {"C": fit.params.get("C"), "features": X.shape[1]}, fit.val_auc


def _row(dataset, layer, method, regime, seed, train, test) -> dict:
    return {
        "train_dataset": dataset,
        "test_dataset": dataset,
        "layer": layer,
        "representation": REPRESENTATION,
        "pooling": method,
        "pooling_comparison": False,
        "sae_task_docs": 0,
        "method": method,
        "regime": regime,
        "level": None,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
    }


def multitoken_summary(results: pl.DataFrame) -> dict:
    """Mean test ROC-AUC and its spread over seeds per regime, layer and method."""
    out: dict = {}
    fitted = results.filter(pl.col("status") == "ok")
    grouped = fitted.group_by(["regime", "layer", "method"], maintain_order=True).agg(
        pl.col("roc_auc").mean().alias("mean"),
        pl.col("roc_auc").std().alias("std"),
        pl.len().alias("seeds"),
    )
    for row in grouped.sort(["regime", "layer", "method"]).iter_rows(named=True):
        out.setdefault(row["regime"], {}).setdefault(f"L{row['layer']}", {})[row["method"]] = {
            "roc_auc": row["mean"],
            "std": row["std"],
            "seeds": row["seeds"],
        }
    return out
