"""Cross-model transfer (MOSAIC): probes on the main model's representations predict
whether a second model answers an item correctly, beside a probe on that second model's
own hidden states. Same samples, methods and statistics as the transfer stages."""

from __future__ import annotations

import numpy as np
import polars as pl

from saeprobe.config import ProbeConfig, TransferConfig
from saeprobe.errors import ConfigError
from saeprobe.probes.sweep import Representation
from saeprobe.regularization.stats import summarize
from saeprobe.transfer.behaviour_io import CORRECT, hidden_matrix
from saeprobe.transfer.fit import Evaluation, fit_and_score
from saeprobe.transfer.summary import SETTING, family, setting_label

REGIME = "cross_model"


def behaviour_dataset(dataset: str, model: str) -> str:
    """How the results table names the task: `sciq_tf:smollm2-135m` (did it answer right?)."""
    return f"{dataset}:{model}"


def own_representation_name(model: str) -> str:
    return f"hidden_{model}"


def behaviour_labels(prepared: pl.DataFrame, behaviour: pl.DataFrame, where: str) -> np.ndarray:
    """1 where the second model answered the item correctly, row-aligned with `prepared`."""
    if behaviour["id"].to_list() != prepared["id"].to_list():
        raise ConfigError(
            f"{where}: its items are not the prepared data set's (ids differ); rerun behaviour@"
        )
    y = (behaviour["label"] == CORRECT).to_numpy().astype(np.int64)
    for part in ("train", "test"):
        in_part = (prepared["split"] == part).to_numpy()
        if len(np.unique(y[in_part])) < 2:
            raise ConfigError(
                f"{where}: on the {part} split the second model is right on every item or on "
                "none, so there is nothing to predict; use a harder data set or another model"
            )
    return y


def own_representations(
    behaviour: pl.DataFrame, model: str, layers: list[int], where: str
) -> list[Representation]:
    """The second model's hidden states at its answer position, one per cross_model.layers."""
    name = own_representation_name(model)
    return [
        Representation(layer, name, hidden_matrix(behaviour, layer, where), "answer")
        for layer in layers
    ]


def run_cross_model(
    dataset: str,
    prepared: pl.DataFrame,
    y: np.ndarray,
    reps: list[Representation],
    model: str,
    cfg: TransferConfig,
    probe_cfg: ProbeConfig,
    base_seed: int,
) -> pl.DataFrame:
    """Every (seed, representation, method) fit on a class-balanced sample of the training
    split (transfer.seeds, transfer.max_train, transfer.methods) and scored on the test split."""
    name = behaviour_dataset(dataset, model)

    def evaluations(rep: Representation, test: np.ndarray) -> list[Evaluation]:
        return [Evaluation(name, rep.X[test], y[test])]

    return fit_and_score(
        name,
        y,
        prepared["split"].to_numpy(),
        reps,
        evaluations,
        cfg=cfg,
        probe_cfg=probe_cfg,
        base_seed=base_seed,
        regime=REGIME,
        what=f"cross-model data set '{dataset}'",
    )


def summarize_cross_model(results: pl.DataFrame, model: str) -> list[dict]:
    """Per setting: test AUC with a 95% interval over seeds, best first; the second model's
    own hidden states are the family `own_hidden`."""
    ok = results.filter(pl.col("status") == "ok").sort([*SETTING, "seed"])
    own = own_representation_name(model)
    out = []
    for key, part in ok.group_by(SETTING, maintain_order=True):
        layer, representation, pooling, method = key
        out.append(
            {
                "layer": layer,
                "representation": representation,
                "pooling": pooling,
                "method": method,
                "family": "own_hidden" if representation == own else family(representation, method),
                "seeds": len(part),
                "auc": summarize(part["roc_auc"].to_numpy()),
            }
        )
    return sorted(out, key=lambda r: (-r["auc"]["mean"], r["layer"], r["method"]))


def best_by_family(summary: list[dict]) -> dict[str, dict]:
    """The best setting of each family (the summary is sorted best first)."""
    best: dict[str, dict] = {}
    for row in summary:
        best.setdefault(row["family"], row)
    return best


def plot_rows(summary: list[dict]) -> pl.DataFrame:
    """One row per setting: mean test AUC and its interval (the DVC plot)."""
    return pl.DataFrame(
        {
            "setting": [setting_label(r) for r in summary],
            "family": [r["family"] for r in summary],
            "auc": [r["auc"]["mean"] for r in summary],
            "ci_low": [r["auc"]["ci_low"] for r in summary],
            "ci_high": [r["auc"]["ci_high"] for r in summary],
        },
        schema={
            "setting": pl.String,
            "family": pl.String,
            "auc": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    )
