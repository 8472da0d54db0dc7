"""reports/report.html: one self-contained page (figures as Vega-Lite specs drawn by the
Vega scripts inlined from the project's DVC HTML template: it opens offline) that answers
the three papers' questions for the current run. A section whose stage has not run says
so instead of vanishing."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from saeprobe.errors import ConfigError
from saeprobe.report import figures
from saeprobe.report.outputs import RunOutputs, SelfRegOutputs
from saeprobe.transfer.summary import setting_label

TEMPLATE = Path(".dvc/plots/offline.html")  # the DVC HTML template with Vega inlined
SCRIPT = re.compile(r"<script data-library=\"[^\"]+\">.*?</script>", re.DOTALL)
LEVEL_AXES = {
    "scarcity": ("Training examples", True),
    "imbalance": ("Share of positive training examples", False),
    "noise": ("Share of flipped training labels", False),
}
REGIME_ORDER = ("normal", "scarcity", "imbalance", "noise", "shift")
SELFREG_COLUMNS = ("accuracy", "macro_f1", "dp_gap", "eo_gap", "score_leakage", "input_leakage")


def vega_scripts(template: Path = TEMPLATE) -> str:
    """The inlined Vega, Vega-Lite and Vega-Embed scripts of the DVC HTML template."""
    if not template.exists():
        raise ConfigError(f"{template} is missing: the report takes its Vega scripts from it")
    scripts = SCRIPT.findall(template.read_text(encoding="utf-8"))
    if len(scripts) != 3:
        raise ConfigError(f"{template}: expected the 3 inlined Vega scripts, found {len(scripts)}")
    return "\n".join(scripts)


class Page:
    """Sections, tables and figures, assembled into one HTML document."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: dict[str, dict] = {}
        self.toc: list[tuple[str, str]] = []

    def section(self, anchor: str, title: str, meaning: str) -> None:
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')
        self.parts.append(f'<p class="meaning">{html.escape(meaning)}</p>')

    def subsection(self, title: str) -> None:
        self.parts.append(f"<h3>{html.escape(title)}</h3>")

    def missing(self, what: str) -> None:
        self.parts.append(f'<p class="missing">{html.escape(what)}</p>')

    def open_details(self, summary: str) -> None:
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary>")

    def close_details(self) -> None:
        self.parts.append("</details>")

    def text(self, sentence: str) -> None:
        self.parts.append(f"<p>{html.escape(sentence)}</p>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, spec: dict, caption: str) -> None:
        if not figures.has_data(spec):
            self.missing(f"No data for the figure '{spec.get('title', caption)}'.")
            return
        name = f"figure{len(self.specs) + 1}"
        self.specs[name] = spec
        self.parts.append(
            f'<figure><div class="vega" id="{name}"></div>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def render(self, title: str, scripts: str) -> str:
        toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in self.toc)
        specs = json.dumps(self.specs).replace("</", "<\\/")
        return PAGE.format(
            title=html.escape(title),
            scripts=scripts,
            toc=toc,
            body="\n".join(self.parts),
            specs=specs,
        )


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not np.isfinite(value) else f"{value:.3f}"
    return html.escape(str(value))


def _ci(entry: dict) -> str:
    low, high = entry.get("ci95", [None, None])
    if low is None:
        return f"{entry.get('roc_auc', float('nan')):.3f}"
    return f"{entry['roc_auc']:.3f} [{low:.3f}, {high:.3f}]"


# ---------------------------------------------------------------------------------------
# Sections


def data_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "data",
        "Data sets",
        "What each data set holds, by split, and how much of it the model read (texts longer "
        "than extract.max_length tokens are truncated).",
    )
    if outputs.data is None:
        page.missing("The report stage found no data set metrics (reports/metrics.json).")
        return
    rows = []
    for name, entry in outputs.data["datasets"].items():
        data, extract = entry["data"], entry["extract"]
        rows.append(
            [
                name,
                data["classes"],
                data["train_examples"],
                data["test_examples"],
                data["ood_examples"],
                extract["tokens"],
                extract["truncated_docs"],
            ]
        )
    page.table(["data set", "classes", "train", "test", "ood", "tokens", "truncated texts"], rows)


def sae_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "sae",
        "SAE quality",
        "How well each SAE reconstructs held-out activations (FVU: fraction of variance "
        "unexplained, lower is better), how many latents fire per token (L0), the share of "
        "latents that never fire (dead), and how much of the language model's loss survives "
        "when the SAE's reconstruction replaces the layer (CE recovered, 1 is perfect); "
        "fine-tuned SAEs before and after fine-tuning on their task.",
    )
    if not outputs.sae:
        page.missing("No SAE has been trained yet (the train_sae stage has not run).")
        return
    rows, bars = [], []
    order = sorted(outputs.sae.items(), key=lambda item: (item[0][0], item[0][1] != "pretrained"))
    for (layer, name), report in order:
        after = report.get("eval", {})
        before = report.get("eval_before_finetune", {})
        rows.append(
            [
                f"L{layer}",
                name,
                report.get("width"),
                before.get("fvu"),
                after.get("fvu"),
                after.get("l0"),
                before.get("dead_share"),
                after.get("dead_share"),
                after.get("ce_loss_recovered"),
            ]
        )
        if before:
            bars += [
                {"sae": f"L{layer} {name}", "fvu": before["fvu"], "when": "before fine-tuning"},
                {"sae": f"L{layer} {name}", "fvu": after["fvu"], "when": "after fine-tuning"},
            ]
    page.table(
        [
            "layer",
            "SAE",
            "width",
            "FVU before",
            "FVU",
            "L0",
            "dead before",
            "dead",
            "CE recovered",
        ],
        rows,
    )
    if bars:
        page.figure(
            figures.bar_chart(
                pl.DataFrame(bars),
                category="sae",
                value="fvu",
                color="when",
                title="Held-out FVU before and after task fine-tuning",
                value_title="FVU on the task's test tokens (lower is better)",
            ),
            "Fine-tuning on a task's texts should lower the FVU on that task.",
        )


def probe_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "probes",
        "Probes: SAE features against baselines",
        "Test ROC-AUC of the best baseline and the best SAE probe per data set, each chosen "
        "by validation AUC, with bootstrap 95% intervals over seeds; the paper's protocol "
        "(last token, one layer, its candidates) and every probe this pipeline fits.",
    )
    probes = outputs.probes
    if probes is None:
        page.missing("The probe stages have not run (no reports/probes/metrics.json).")
        return
    regimes = sorted(probes, key=lambda r: REGIME_ORDER.index(r) if r in REGIME_ORDER else 99)
    for regime in regimes:
        summary = probes[regime]
        page.subsection(f"Regime: {regime}")
        fitted = summary.get("fits", 0)
        page.text(f"{fitted} fits; {summary.get('not_fitted', 0)} settings could not be fitted.")
        levels = sorted(summary.get("levels", {}).items(), key=_level_key)
        for level, parts in levels:
            folded = len(levels) > 1  # a regime with levels: one folded table per level
            if folded:
                page.open_details(f"Best baseline against best SAE probe at level {level}")
            page.table(BEST_HEADERS, best_rows(parts))
            if folded:
                page.close_details()
        quiver_table(page, summary)
        if regime in LEVEL_AXES and regime in outputs.probe_plots:
            title, log_x = LEVEL_AXES[regime]
            page.figure(
                figures.line_chart(
                    outputs.probe_plots[regime],
                    x="level",
                    y="roc_auc",
                    series="series",
                    title=f"Test AUC against {title.lower()} ({regime})",
                    x_title=title,
                    y_title="Test ROC-AUC (mean over data sets and seeds)",
                    log_x=log_x,
                ),
                f"Each probe's test AUC as the {regime} level changes.",
            )
    comparison_figures(page, outputs.probe_plots)


def multitoken_table(page: Page, summaries: dict[str, dict | None]) -> None:
    """The multi-token probes' test AUC per data set, regime, layer and method."""
    page.subsection("Multi-token probes")
    page.text(
        "The paper's probes that read every token: attention pooling and a PCA per token "
        "position, joined (L1 probe); trained on the normal regime's samples, so they pair "
        "with the last-token probes above. Mean test ROC-AUC over seeds (± standard deviation)."
    )
    rows = []
    for name, summary in sorted(summaries.items()):
        for regime, layers in (summary or {}).items():
            for layer, methods in layers.items():
                for method, entry in methods.items():
                    spread = entry["std"] if entry["std"] is not None else float("nan")
                    rows.append(
                        [name, regime, layer, method, f"{entry['roc_auc']:.3f} ± {spread:.3f}"]
                    )
    if not rows:
        page.missing("The multitoken stages have not run (no reports/multitoken/).")
        return
    page.table(["data set", "regime", "layer", "probe", "test AUC"], rows)


BEST_HEADERS = (
    "protocol",
    "data set",
    "best baseline",
    "test AUC [95% CI]",
    "best SAE probe",
    "test AUC [95% CI]",
    "SAE − baseline",
    "paired t p",
)


def best_rows(parts: dict) -> list[list]:
    """Per protocol and data set: the best baseline and SAE probe with their intervals."""
    rows = []
    for protocol, part in parts.items():
        for name, entry in sorted(part.get("datasets", {}).items()):
            # A side with no fitted probe at this level (e.g. every baseline infeasible) is
            # shown as a dash.
            baseline, sae = entry.get("best_baseline"), entry.get("best_sae")
            rows.append(
                [
                    protocol,
                    name,
                    baseline["probe"] if baseline else None,
                    _ci(baseline) if baseline else None,
                    sae["probe"] if sae else None,
                    _ci(sae) if sae else None,
                    entry.get("sae_minus_baseline"),
                    entry.get("paired_t_p"),
                ]
            )
    return rows


def _level_key(item: tuple[str, dict]):
    try:
        return (0, float(item[0]))
    except ValueError:
        return (1, 0.0)


def quiver_table(page: Page, summary: dict) -> None:
    rows = []
    for level, parts in sorted(summary.get("levels", {}).items(), key=_level_key):
        for protocol, part in parts.items():
            quiver = part.get("quiver") or {}
            if quiver:
                rows.append(
                    [
                        level,
                        protocol,
                        quiver.get("settings"),
                        quiver.get("sae_picked_share"),
                        quiver.get("baselines_auc"),
                        quiver.get("with_sae_auc"),
                    ]
                )
    if rows:
        page.text(
            "The quiver: adding the SAE probes to the candidates, does picking by validation "
            "AUC raise the test AUC? (share of settings where an SAE probe is picked; test "
            "AUC of the pick from the baselines alone and with the SAE probes)"
        )
        page.table(
            ["level", "protocol", "settings", "SAE picked", "baselines only", "with SAE"], rows
        )


def comparison_figures(page: Page, plots: dict[str, pl.DataFrame]) -> None:
    page.subsection("Layers, k, binarization, pooling and MOSAIC (normal regime)")
    if "layers" in plots:
        page.figure(
            figures.heatmap(
                plots["layers"],
                row="series",
                column="layer",
                value="roc_auc",
                title="Test AUC by layer",
                column_title="Layer (hidden_states index)",
                value_title="Test ROC-AUC",
            ),
            "Which layer's representation classifies best, per probe (mean over data sets).",
        )
    if "sae_k" in plots:
        page.figure(
            figures.line_chart(
                plots["sae_k"],
                x="k",
                y="roc_auc",
                series="series",
                title="Top-k SAE probe: test AUC against k",
                x_title="Latents kept (k)",
                y_title="Test ROC-AUC",
                log_x=True,
            ),
            "How many SAE latents a probe needs.",
        )
    if "pooling" in plots:  # setting = probe@pooling
        parts = pl.col("setting").str.split_exact("@", 1)
        table = plots["pooling"].with_columns(
            parts.struct.field("field_0").alias("probe"),
            parts.struct.field("field_1").alias("pooling"),
        )
        page.figure(
            figures.heatmap(
                table,
                row="probe",
                column="pooling",
                value="roc_auc",
                title="Pooling strategies",
                column_title="Pooling over tokens",
                value_title="Test ROC-AUC",
            ),
            "The same probe on token activations pooled each way (mean over data sets).",
        )
    bars = {
        "binarized": ("Binarized against continuous SAE codes", "features"),
        "mosaic": ("MOSAIC: classifiers on top-n latent counts", None),
    }
    for name, (title, color) in bars.items():
        if name not in plots:
            continue
        page.figure(
            figures.bar_chart(
                plots[name],
                category="setting",
                value="roc_auc",
                color=color,
                title=title,
                value_title="Test ROC-AUC",
            ),
            title + ".",
        )


def selfreg_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "selfreg",
        "Self-regularization",
        "A classifier on hidden states kept away from the SAE latents judged unintended "
        "(spurious or sensitive), against the plain classifier and common regularizers: "
        "accuracy should hold while the fairness gaps (demographic parity, equalized odds) "
        "and the leakage of the unintended attribute fall; p is a paired one-sided t-test "
        "against plain over seeds.",
    )
    if not outputs.selfreg:
        page.missing("No self-regularization benchmark is configured (unintended.benchmarks).")
        return
    for (name, layer), result in sorted(outputs.selfreg.items()):
        page.subsection(f"{name}, layer {layer}")
        selfreg_result(page, result, f"{name}, L{layer}")


def selfreg_result(page: Page, result: SelfRegOutputs, where: str) -> None:
    if result.metrics is None:
        page.missing("The selfreg stage has not run for this benchmark.")
        return
    for split in ("test", "ood"):
        methods = result.metrics.get(split)
        if not methods:
            continue
        rows = []
        for method, values in methods.items():
            row = [split, method]
            for column in SELFREG_COLUMNS:
                entry = values.get(column) or {}
                row.append(entry.get("mean"))
            row.append((values.get("accuracy") or {}).get("p_vs_plain"))
            rows.append(row)
        page.table(["split", "method", *SELFREG_COLUMNS, "p (accuracy vs plain)"], rows)
    for plot, table in result.plots.items():
        page.figure(
            figures.line_chart(
                table,
                x="lambda",
                y=plot,
                series="series",
                title=f"{where}: test {plot.replace('_', ' ')} against lambda",
                x_title="lambda (penalty weight)",
                y_title=f"Test {plot.replace('_', ' ')}",
                log_x=True,
            ),
            "Baselines do not depend on lambda: they are flat lines for comparison.",
        )
    unintended = result.unintended
    if unintended is None:
        page.missing("The unintended stage has not run for this benchmark.")
        return
    marked = unintended.filter(pl.col("unintended")).head(12)
    summary = result.unintended_summary or {}
    page.text(f"{summary.get('unintended', marked.height)} latents judged unintended; the first:")
    page.table(
        ["latent", "judge", "evidence", "detail", "top spans"],
        [
            [r["latent"], r["judge"], r["evidence"], r["detail"], r["spans"]]
            for r in marked.iter_rows(named=True)
        ],
    )


def transfer_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "transfer",
        "Transfer",
        "Each probe trained on one data set and tested, unchanged, on another whose labels "
        "mean the same (texts the source contains are left out): the drop from its "
        "in-distribution ROC-AUC says how much of what it learned is the task rather than "
        "the data set; brackets are 95% intervals over seeds.",
    )
    if not outputs.transfer:
        page.missing("No transfer pair is configured (transfer.pairs).")
        return
    for pair, summary in sorted(outputs.transfer.items()):
        if summary is None:
            page.subsection(pair)
            page.missing("The transfer stage has not run for this pair.")
            continue
        transfer_result(page, pair, summary)


def _with_interval(entry: dict) -> str:
    return f"{entry['mean']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def transfer_result(page: Page, pair: str, summary: dict) -> None:
    page.subsection(f"{pair}: {summary['train']} → {summary['test']}")
    page.text(
        f"{summary['n_train']} training texts per seed; {summary['n_test_in_distribution']} "
        f"in-distribution test texts; {summary['n_target']} texts of {summary['test']} "
        f"({summary['target_rows_sharing_a_source_text']} left out for sharing a text with "
        f"{summary['train']})."
    )
    settings = summary["settings"]
    families = {}
    for row in settings:
        families.setdefault(row["family"], []).append(row["drop"]["mean"])
    page.table(
        ["representation family", "settings", "mean drop", "smallest drop"],
        [[f, len(d), float(np.mean(d)), min(d)] for f, d in sorted(families.items())],
    )
    page.table(
        ["layer", "representation", "pooling", "probe", "in-distribution", "transfer", "drop"],
        [
            [
                r["layer"] if r["layer"] >= 0 else "text",
                r["representation"],
                r["pooling"],
                r["method"],
                _with_interval(r["in_distribution"]),
                _with_interval(r["transfer"]),
                _with_interval(r["drop"]),
            ]
            for r in settings
        ],
    )
    bars = pl.DataFrame(
        [
            {"setting": setting_label(r), "test set": where, "roc_auc": r[key]["mean"]}
            for r in settings
            for key, where in (("in_distribution", summary["train"]), ("transfer", summary["test"]))
        ]
    )
    page.figure(
        figures.bar_chart(
            bars,
            category="setting",
            value="roc_auc",
            color="test set",
            title=f"{pair}: ROC-AUC in distribution and after the move",
            value_title="Test ROC-AUC (mean over seeds)",
        ),
        "Settings sorted by their drop, smallest first.",
    )


def cross_model_section(page: Page, outputs: RunOutputs) -> None:
    page.section(
        "cross_model",
        "Cross-model: predicting a second model's answers",
        "A second model answers each true/false item; probes on this model's representations "
        "predict whether it answers right, beside a probe on the second model's own hidden "
        "states (family own_hidden). Brackets are 95% intervals over seeds.",
    )
    if not outputs.cross_model:
        page.missing("No cross-model data set is configured (cross_model.datasets).")
        return
    for name, (answers, summary) in sorted(outputs.cross_model.items()):
        page.subsection(name)
        if answers is None or summary is None:
            page.missing("The behaviour and cross_model stages have not run for this data set.")
            continue
        overall = answers["overall"]
        page.text(
            f"{answers['model']} answers {overall['correct']} of {overall['items']} items right "
            f"({overall['accuracy']:.1%}); its answers: {answers['answers']}. "
            f"{summary['n_train']} training items per seed, {summary['n_test']} test items."
        )
        page.table(
            ["family", "layer", "representation", "pooling", "probe", "test ROC-AUC"],
            [
                [
                    family,
                    r["layer"] if r["layer"] >= 0 else "text",
                    r["representation"],
                    r["pooling"],
                    r["method"],
                    _with_interval(r["auc"]),
                ]
                for family, r in sorted(summary["best_by_family"].items())
            ],
        )


def classifier_section(page: Page, outputs: RunOutputs, spans: int = 2, top: int = 8) -> None:
    page.section(
        "classifiers",
        "Saved classifiers and the latents they read",
        "Per data set, the top-k SAE probe kept for `saeprobe predict` and `saeprobe explain` "
        "(best validation AUC), and its largest-weight latents with the token spans that "
        "fire them most (the token in «», with its context).",
    )
    if not outputs.classifiers:
        page.missing("The classifier stages have not run (no data/classifiers/).")
        return
    page.table(
        ["data set", "probe", "layer", "SAE", "validation AUC", "test AUC", "latents"],
        [
            [
                n,
                c.info.method,
                c.info.layer,
                c.info.sae,
                c.info.val_auc,
                c.info.test_auc,
                len(c.latents),
            ]
            for n, c in sorted(outputs.classifiers.items())
        ],
    )
    for name, classifier in sorted(outputs.classifiers.items()):
        cards = outputs.cards.get(Path(classifier.info.sae_dir).parent)
        weight = np.abs(classifier.coef).max(0)
        order = np.argsort(-weight, kind="stable")[:top]
        rows = []
        for j in order:
            if weight[j] == 0:
                continue
            latent = int(classifier.latents[j])
            contexts = []
            if cards is not None:
                hits = cards.filter(pl.col("latent") == latent).sort("rank").head(spans)
                contexts = hits["context"].to_list()
            signed = classifier.coef[:, j]
            rows.append([latent, " ".join(f"{w:+.3f}" for w in signed), " | ".join(contexts)])
        page.subsection(f"{name}: {classifier.info.method} at layer {classifier.info.layer}")
        if rows:
            page.table(["latent", "weight", "top spans"], rows)
        else:
            page.missing("Every weight of this probe is zero: it predicts the base rate.")


def render_report(outputs: RunOutputs, scripts: str) -> str:
    page = Page()
    data_section(page, outputs)
    sae_section(page, outputs)
    probe_section(page, outputs)
    multitoken_table(page, outputs.multitoken)
    selfreg_section(page, outputs)
    transfer_section(page, outputs)
    cross_model_section(page, outputs)
    classifier_section(page, outputs)
    return page.render("saeprobe report", scripts)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{scripts}
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
          vertical-align: top; }}
th {{ background: #f3f3f3; }}
.meaning {{ color: #444; font-style: italic; }}
.missing {{ color: #a33; }}
figure {{ margin: 1em 0; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<nav><ol>{toc}</ol></nav>
{body}
<script>
const specs = {specs};
for (const [id, spec] of Object.entries(specs)) {{
  vegaEmbed("#" + id, spec, {{actions: false}});
}}
</script>
</body>
</html>
"""
