"""The pipeline's outputs that the report shows, read from their places; a part whose stage
has not run (its file is absent) is None or empty, and the report says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from saeprobe.classifier import Classifier, load_classifier
from saeprobe.io import read_json
from saeprobe.stage import (
    PLOTS,
    PROBE_METRICS,
    behaviour_report,
    classifier_path,
    cross_model_report,
    multitoken_report,
    sae_ce_report,
    sae_report,
    selfreg_plots,
    selfreg_report,
    transfer_report,
    unintended_path,
)

PROBE_PLOTS = (
    "scarcity",
    "imbalance",
    "noise",
    "layers",
    "sae_k",
    "binarized",
    "pooling",
    "mosaic",
)
SELFREG_PLOTS = ("accuracy", "dp_gap", "eo_gap")


@dataclass
class SelfRegOutputs:
    metrics: dict | None
    unintended_summary: dict | None
    unintended: pl.DataFrame | None  # the judges' decisions, one row per judged latent
    plots: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class RunOutputs:
    data: dict | None = None  # the data set metrics (reports/metrics.json)
    sae: dict[tuple[int, str], dict] = field(default_factory=dict)  # (layer, SAE name)
    probes: dict | None = None  # reports/probes/metrics.json
    probe_plots: dict[str, pl.DataFrame] = field(default_factory=dict)
    selfreg: dict[tuple[str, int], SelfRegOutputs] = field(default_factory=dict)
    classifiers: dict[str, Classifier] = field(default_factory=dict)
    cards: dict[Path, pl.DataFrame] = field(default_factory=dict)  # SAE folder -> its cards
    transfer: dict[str, dict | None] = field(default_factory=dict)  # pair -> its summary
    multitoken: dict[str, dict | None] = field(default_factory=dict)  # data set -> summary
    # data set -> (the second model's answers, the cross-model probes' summary)
    cross_model: dict[str, tuple[dict | None, dict | None]] = field(default_factory=dict)


def _json(path: Path) -> dict | None:
    return read_json(path) if path.exists() else None


def _csv(path: Path) -> pl.DataFrame | None:
    if not path.exists():
        return None
    table = pl.read_csv(path)
    return table if table.height else None


def collect(
    finetuned: list[str],
    probe_datasets: list[str],
    layers: list[int],
    selfreg_pairs: list[tuple[str, int]],
    transfer_pairs: list[str] = (),
    multitoken_datasets: list[str] = (),
    cross_model_datasets: list[str] = (),
) -> RunOutputs:
    """Everything the configured pipeline writes that the report shows, where it exists
    (`finetuned`: the data sets whose fine-tuned SAEs it shows beside the pretrained ones)."""
    out = RunOutputs(probes=_json(PROBE_METRICS))
    out.transfer = {pair: _json(transfer_report(pair)) for pair in transfer_pairs}
    out.multitoken = {name: _json(multitoken_report(name)) for name in multitoken_datasets}
    out.cross_model = {
        name: (_json(behaviour_report(name)), _json(cross_model_report(name)))
        for name in cross_model_datasets
    }
    for layer in layers:
        ce = _json(sae_ce_report(layer)) or {}  # sae_ce@<layer>: each SAE's LM loss
        for name in ["pretrained", *finetuned]:
            report = _json(sae_report(layer, name))
            if report is not None:
                report.setdefault("eval", {}).update(ce.get(name, {}))
                out.sae[(layer, name)] = report
    if out.probes is not None:
        for name in PROBE_PLOTS:
            table = _csv(PLOTS / f"{name}.csv")
            if table is not None:
                out.probe_plots[name] = table
    for name, layer in selfreg_pairs:
        decisions = unintended_path(name, layer)
        plots = {}
        for plot in SELFREG_PLOTS:
            table = _csv(selfreg_plots(name, layer) / f"{plot}.csv")
            if table is not None:
                plots[plot] = table
        out.selfreg[(name, layer)] = SelfRegOutputs(
            metrics=_json(selfreg_report(name, layer, "metrics")),
            unintended_summary=_json(selfreg_report(name, layer, "unintended")),
            unintended=pl.read_parquet(decisions) if decisions.exists() else None,
            plots=plots,
        )
    for name in probe_datasets:
        if classifier_path(name).exists():
            classifier = load_classifier(classifier_path(name))
            out.classifiers[name] = classifier
            cards = Path(classifier.info.sae_dir).parent / "cards.parquet"
            if cards.exists() and cards not in out.cards:
                out.cards[cards] = pl.read_parquet(cards)
    return out
