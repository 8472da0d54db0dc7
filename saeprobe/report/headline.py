"""The run's headline numbers: one small metrics file, so that `dvc exp show` and
`dvc metrics diff` compare runs in a handful of columns (the details stay in the stages'
own files, which `dvc metrics show <file>` reads on request)."""

from __future__ import annotations

import numpy as np

from saeprobe.report.outputs import RunOutputs


def _rounded(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def probe_headline(probes: dict) -> dict:
    """The normal regime's best baseline against the best SAE probe (mean test AUC over
    data sets), in the paper's protocol and over every probe, and the paper-protocol quiver:
    the share of settings where an SAE probe is picked by validation AUC."""
    levels = probes.get("normal", {}).get("levels", {}).get("default", {})
    out = {}
    for key, name in (("paper", "paper"), ("all_probes", "all")):
        part = levels.get(key)
        if not part:
            continue
        baseline, sae = part.get("best_baseline_mean_auc"), part.get("best_sae_mean_auc")
        out[name] = {
            "baseline_auc": _rounded(baseline),
            "sae_auc": _rounded(sae),
            "sae_minus_baseline": _rounded(
                None if baseline is None or sae is None else sae - baseline
            ),
        }
        if key == "paper":
            out[name]["quiver_sae_share"] = _rounded(part.get("quiver", {}).get("sae_picked_share"))
    return out


def sae_headline(sae: dict[tuple[int, str], dict]) -> dict:
    """Per layer, the pretrained SAE's held-out FVU and the share of the LM loss it keeps."""
    out = {}
    for (layer, name), report in sorted(sae.items()):
        if name != "pretrained":
            continue
        evaluation = report.get("eval", {})
        out[f"L{layer}"] = {
            "fvu": _rounded(evaluation.get("fvu")),
            "ce_recovered": _rounded(evaluation.get("ce_loss_recovered")),
        }
    return out


def selfreg_headline(outputs: RunOutputs) -> dict:
    """Self-regularization against the plain classifier on test: accuracy and demographic
    parity gap, each the mean over benchmarks, layers and lambdas of (selfreg - plain)."""
    accuracy, dp_gap = [], []
    for result in outputs.selfreg.values():
        test = (result.metrics or {}).get("test", {})
        if "plain" not in test:
            continue
        for method, values in test.items():
            if not method.startswith("selfreg_lambda"):
                continue
            accuracy.append(values["accuracy"]["mean"] - test["plain"]["accuracy"]["mean"])
            gap, plain_gap = values.get("dp_gap", {}), test["plain"].get("dp_gap", {})
            if gap.get("mean") is not None and plain_gap.get("mean") is not None:
                dp_gap.append(gap["mean"] - plain_gap["mean"])
    if not accuracy:
        return {}
    out = {"accuracy_minus_plain": _rounded(float(np.mean(accuracy)))}
    if dp_gap:
        out["dp_gap_minus_plain"] = _rounded(float(np.mean(dp_gap)))
    return out


def transfer_headline(outputs: RunOutputs) -> dict:
    """Per representation family, the mean ROC-AUC drop from in-distribution to transfer
    over pairs and settings (layers, SAEs, k, poolings)."""
    drops: dict[str, list[float]] = {}
    for summary in outputs.transfer.values():
        for row in (summary or {}).get("settings", []):
            drops.setdefault(row["family"], []).append(row["drop"]["mean"])
    return {f"{family}_drop": _rounded(float(np.mean(d))) for family, d in sorted(drops.items())}


def cross_model_headline(outputs: RunOutputs) -> dict:
    """Per representation family, its best test ROC-AUC at predicting whether the second
    model answers right, averaged over the data sets."""
    best: dict[str, list[float]] = {}
    for _, summary in outputs.cross_model.values():
        for family, row in ((summary or {}).get("best_by_family") or {}).items():
            best.setdefault(family, []).append(row["auc"]["mean"])
    return {f"{family}_auc": _rounded(float(np.mean(a))) for family, a in sorted(best.items())}


def headline(outputs: RunOutputs) -> dict:
    out: dict = {}
    if outputs.probes:
        out["probes"] = probe_headline(outputs.probes)
    if outputs.sae:
        out["sae"] = sae_headline(outputs.sae)
    selfreg = selfreg_headline(outputs)
    if selfreg:
        out["selfreg"] = selfreg
    transfer = transfer_headline(outputs)
    if transfer:
        out["transfer"] = transfer
    cross_model = cross_model_headline(outputs)
    if cross_model:
        out["cross_model"] = cross_model
    if outputs.classifiers:
        aucs = [c.info.test_auc for c in outputs.classifiers.values()]
        out["classifier_test_auc"] = _rounded(float(np.mean(aucs)))
    return out
