"""reports/report.html and reports/headline.json, from outputs built here (the pipeline's
own run is checked in test_pipeline.py)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from saeprobe.classifier import Classifier
from saeprobe.report.headline import headline
from saeprobe.report.outputs import RunOutputs, SelfRegOutputs, collect
from saeprobe.report.page import TEMPLATE, render_report, vega_scripts
from tests.test_classifier import info as classifier_info

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("data", "sae", "probes", "selfreg", "transfer", "classifiers")


def specs_of(page: str) -> dict:
    found = re.search(r"const specs = (\{.*?\});\nfor", page, re.DOTALL)
    return json.loads(found.group(1).replace("<\\/", "</"))


def entry(auc, probe):
    return {"probe": probe, "roc_auc": auc, "val_auc": auc, "ci95": [auc - 0.01, auc + 0.01]}


def probe_metrics():
    part = {
        "best_baseline_mean_auc": 0.8,
        "best_sae_mean_auc": 0.7,
        "datasets": {
            "spam": {
                "best_baseline": entry(0.8, "L6/hidden/pca"),
                "best_sae": entry(0.7, "L6/sae_pretrained/sae_top16"),
                "sae_minus_baseline": -0.1,
                "paired_t_p": 0.01,
            }
        },
        "quiver": {
            "settings": 3,
            "sae_picked_share": 1 / 3,
            "baselines_auc": 0.8,
            "with_sae_auc": 0.79,
        },
    }
    normal = {
        "fits": 10,
        "not_fitted": 0,
        "levels": {"default": {"paper": part, "all_probes": part}},
    }
    # at level 2 no baseline could be fitted: the table shows a dash for it
    only_sae = {"best_sae": entry(0.6, "L6/sae_pretrained/sae_top16")}
    level2 = {"paper": part | {"datasets": {"spam": only_sae}}}
    scarcity = {"fits": 4, "not_fitted": 1, "levels": {"2": level2, "8": {"paper": part}}}
    return {"normal": normal, "scarcity": scarcity}


def full_outputs() -> RunOutputs:
    series = pl.DataFrame(
        {
            "series": ["L6/hidden/pca"] * 2 + ["L6/sae_pretrained/sae_top16"] * 2,
            "level": [2.0, 8.0, 2.0, 8.0],
            "roc_auc": [0.6, 0.7, 0.55, 0.65],
        }
    )
    lam = pl.DataFrame(
        {
            "series": ["plain", "plain", "selfreg", "selfreg"],
            "lambda": [1.0, 3.0, 1.0, 3.0],
            "accuracy": [0.8, 0.8, 0.79, 0.78],
        }
    )
    stats = {"mean": 0.8, "std": 0.01, "ci_low": 0.79, "ci_high": 0.81, "p_vs_plain": 0.5}
    selfreg_metrics = {
        "test": {
            "plain": {"accuracy": stats, "dp_gap": stats | {"mean": 0.5}},
            "selfreg_lambda1": {
                "accuracy": stats | {"mean": 0.78},
                "dp_gap": stats | {"mean": 0.2},
            },
        }
    }
    decisions = pl.DataFrame(
        {
            "latent": [7, 9],
            "judge": ["concepts", "concepts"],
            "evidence": [1.0, 0.1],
            "detail": ["concept news source", ""],
            "unintended": [True, False],
            "spans": ["(«Reuters») a review", ""],
        }
    )
    info = classifier_info(
        layer=6, sae_dir="data/sae/L6/pretrained/sae", method="sae_top2", test_auc=0.85
    )
    classifier = Classifier(
        info, np.array([3, 5]), np.array([[1.5, -0.5]]), np.array([0.1]), np.array([0, 1])
    )
    cards = pl.DataFrame(
        {
            "latent": [3, 3, 5],
            "rank": [0, 1, 0],
            "context": ["a «free» prize", "«win» now", "see «you»"],
        }
    )
    sae = {
        "eval": {"fvu": 0.2, "l0": 32.0, "dead_share": 0.1, "ce_loss_recovered": 0.9},
        "width": 5120,
    }
    tuned = sae | {"eval_before_finetune": {"fvu": 0.25, "dead_share": 0.2}}
    return RunOutputs(
        data={
            "total": {},
            "datasets": {
                "spam": {
                    "data": {
                        "classes": 2,
                        "train_examples": 10,
                        "test_examples": 5,
                        "ood_examples": 0,
                    },
                    "extract": {"tokens": 100, "truncated_docs": 0},
                }
            },
        },
        sae={(6, "pretrained"): sae, (6, "spam"): tuned},
        probes=probe_metrics(),
        probe_plots={
            "scarcity": series,
            "layers": pl.DataFrame(
                {"series": ["hidden/pca"] * 2, "layer": [6, 12], "roc_auc": [0.7, 0.8]}
            ),
            "sae_k": pl.DataFrame(
                {"series": ["L6/sae_pretrained"] * 2, "k": [1, 16], "roc_auc": [0.6, 0.7]}
            ),
            "pooling": pl.DataFrame(
                {
                    "setting": ["L6/hidden/logreg_l2@mean", "L6/hidden/logreg_l2@last"],
                    "roc_auc": [0.8, 0.7],
                }
            ),
            "binarized": pl.DataFrame(
                {
                    "test_dataset": ["spam", "spam"],
                    "features": ["binarized", "continuous"],
                    "roc_auc": [0.6, 0.7],
                    "setting": ["spam/binarized", "spam/continuous"],
                }
            ),
        },
        selfreg={
            ("sentiment_cue", 6): SelfRegOutputs(
                metrics=selfreg_metrics,
                unintended_summary={"unintended": 1},
                unintended=decisions,
                plots={"accuracy": lam},
            )
        },
        classifiers={"spam": classifier},
        cards={Path("data/sae/L6/pretrained"): cards},
        transfer={"sentiment-movies": transfer_summary(), "toxicity-hate": None},
        multitoken={
            "spam": {"normal": {"L6": {"attention": {"roc_auc": 0.93, "std": 0.01, "seeds": 3}}}}
        },
    )


def transfer_summary() -> dict:
    def ci(mean):
        return {"mean": mean, "ci_low": mean - 0.01, "ci_high": mean + 0.01}

    def setting(layer, representation, pooling, method, family, in_auc, out_auc):
        return {
            "layer": layer,
            "representation": representation,
            "pooling": pooling,
            "method": method,
            "family": family,
            "seeds": 3,
            "in_distribution": ci(in_auc),
            "transfer": ci(out_auc),
            "drop": ci(round(in_auc - out_auc, 3)),
        }

    return {
        "train": "sentiment",
        "test": "movie_sentiment",
        "labels": {},
        "n_train": 256,
        "n_test_in_distribution": 180,
        "n_target": 590,
        "target_rows_sharing_a_source_text": 10,
        "settings": [
            setting(6, "hidden", "last", "logreg_l2", "hidden", 0.9, 0.85),
            setting(6, "sae_pretrained", "last", "sae_top16", "sae", 0.88, 0.8),
            setting(-1, "text", "", "tfidf", "tfidf", 0.8, 0.6),
        ],
    }


def test_every_figure_of_the_report_has_data_and_renders_with_vega_lite():
    vl_convert = pytest.importorskip("vl_convert", reason="pip install vl-convert-python")
    page = render_report(full_outputs(), vega_scripts(ROOT / TEMPLATE))
    specs = specs_of(page)
    assert len(specs) >= 7
    for name, spec in specs.items():
        assert spec["data"]["values"], name
        assert spec["title"] and name in page
        svg = vl_convert.vegalite_to_svg(spec, vl_version="6.1")
        assert "<svg" in svg and "Error" not in svg[:200], name
        encoding = spec.get("encoding", {})
        for axis in ("x", "y"):  # every quantitative axis says what it measures
            if encoding.get(axis, {}).get("type") == "quantitative":
                assert encoding[axis]["title"], (name, axis)
    for section in SECTIONS:
        assert f'id="{section}"' in page
    assert "0.700 [0.690, 0.710]" in page  # the best SAE probe's AUC with its interval
    assert "0.050 [0.040, 0.060]" in page  # a transfer drop with its interval
    assert "The transfer stage has not run for this pair" in page
    assert "0.930 ± 0.010" in page  # a multi-token probe's AUC
    assert "«Reuters»" in page and "a «free» prize" in page  # unintended latent, card span


def test_the_report_renders_when_no_stage_has_run_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outputs = collect(
        ["spam"], ["spam"], [6], [("sentiment_cue", 6)], ["sentiment-movies"], ["spam"]
    )
    page = render_report(outputs, vega_scripts(ROOT / TEMPLATE))
    for section in SECTIONS:
        assert f'id="{section}"' in page
    for missing in (
        "No SAE has been trained yet",
        "The probe stages have not run",
        "The selfreg stage has not run",
        "The transfer stage has not run for this pair",
        "The multitoken stages have not run",
        "The classifier stages have not run",
    ):
        assert missing in page
    assert specs_of(page) == {}
    assert headline(outputs) == {}
    unpaired = render_report(collect(["spam"], ["spam"], [6], []), vega_scripts(ROOT / TEMPLATE))
    assert "No transfer pair is configured (transfer.pairs)" in unpaired


def test_the_page_and_the_dvc_plots_template_load_nothing_from_the_network():
    page = render_report(full_outputs(), vega_scripts(ROOT / TEMPLATE))
    template = (ROOT / TEMPLATE).read_text()
    for html in (page, template):
        assert not re.search(r"<script[^>]+src=", html)
        assert not re.search(r"<link[^>]+href=\"https?:", html)
    assert "{plot_divs}" in template and "{scripts}" not in template
    for library in ("vega@6", "vega-lite@6", "vega-embed@7"):
        assert f'data-library="{library}' in template


def test_the_headline_is_a_handful_of_numbers_taken_from_the_stage_outputs():
    numbers = headline(full_outputs())

    def leaves(tree):
        return sum(leaves(v) if isinstance(v, dict) else 1 for v in tree.values())

    assert leaves(numbers) <= 20
    assert numbers["probes"]["paper"] == {
        "baseline_auc": 0.8,
        "sae_auc": 0.7,
        "sae_minus_baseline": -0.1,
        "quiver_sae_share": 0.3333,
    }
    assert numbers["sae"] == {"L6": {"fvu": 0.2, "ce_recovered": 0.9}}
    assert numbers["selfreg"] == {"accuracy_minus_plain": -0.02, "dp_gap_minus_plain": -0.3}
    assert numbers["classifier_test_auc"] == 0.85
    assert numbers["transfer"] == {"hidden_drop": 0.05, "sae_drop": 0.08, "tfidf_drop": 0.2}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Records the page's script errors and console errors on the document, for --dump-dom.
ERROR_PROBE = """<script>
const seen = [];
const note = (m) => {
  seen.push(String(m));
  document.documentElement.dataset.errors = seen.join(" | ");
};
window.addEventListener("error", (e) => note(e.message));
window.addEventListener("unhandledrejection", (e) => note(e.reason));
const consoleError = console.error;
console.error = (...args) => { note(args.join(" ")); consoleError(...args); };
</script>"""


def chromium(page: Path, *flags: str) -> str:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt chromium)")
def test_the_report_loads_in_headless_chromium_with_every_figure_drawn_and_no_errors(tmp_path):
    html = render_report(full_outputs(), vega_scripts(ROOT / TEMPLATE))
    page = tmp_path / "report.html"
    page.write_text(html.replace("<head>", "<head>" + ERROR_PROBE, 1))
    dom = chromium(page, "--dump-dom")
    assert "data-errors" not in dom, re.search(r'data-errors="[^"]*"', dom).group(0)
    for name in specs_of(html):  # vega-embed drew each figure as SVG inside its div
        drawn = re.search(rf'id="{name}"[^>]*>\s*<svg', dom)
        assert drawn, f"{name} was not drawn"
    shot = tmp_path / "report.png"
    chromium(page, f"--screenshot={shot}", "--window-size=1200,3000")
    assert shot.exists() and shot.stat().st_size > 20_000


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt chromium)")
def test_the_chromium_check_sees_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(f"<html><head>{ERROR_PROBE}</head><body><script>nowhere();</script></body>")
    assert "data-errors" in chromium(page, "--dump-dom")


def test_the_report_joins_each_layers_lm_loss_to_its_saes_figures(tmp_path, monkeypatch):
    from saeprobe.io import write_json
    from saeprobe.stage import sae_ce_report, sae_report

    monkeypatch.chdir(tmp_path)
    write_json(sae_report(6), {"eval": {"fvu": 0.2}, "width": 5120})
    write_json(sae_report(6, "spam"), {"eval": {"fvu": 0.1}, "width": 5120})
    write_json(
        sae_ce_report(6),
        {"pretrained": {"ce_loss_recovered": 0.9}, "spam": {"ce_loss_recovered": 0.8}},
    )
    outputs = collect(["spam"], ["spam"], [6], [])
    assert outputs.sae[(6, "pretrained")]["eval"] == {"fvu": 0.2, "ce_loss_recovered": 0.9}
    assert outputs.sae[(6, "spam")]["eval"] == {"fvu": 0.1, "ce_loss_recovered": 0.8}
    assert headline(outputs)["sae"] == {"L6": {"fvu": 0.2, "ce_recovered": 0.9}}
