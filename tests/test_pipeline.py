"""`dvc repro` end to end on a temporary copy of the project with tiny params."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def dvc(project: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "dvc.yaml", project)
    for name in ("saeprobe", "stages"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "tests" / "data" / "tiny_params.yaml", project / "params.yaml")
    dvc(project, "init", "--no-scm", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", project / ".dvc" / "plots")
    return project


def test_repro_builds_every_output(project):
    out = dvc(project, "repro")
    assert {"prepare@spam", "extract@grammar", "report"} <= ran(out)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["datasets"]["grammar"]["data"]["ood_examples"] == 20
    assert metrics["datasets"]["spam"]["extract"]["docs"] == 40
    assert (project / "data" / "activations" / "spam" / "tokens.h5").exists()
    for layer in (1, 3):
        pretrained = json.loads(
            (project / "reports/sae" / f"L{layer}" / "pretrained.json").read_text()
        )
        assert 0 < pretrained["eval"]["fvu"] < 1.5 and pretrained["eval"]["l0"] <= 8
        tuned = json.loads((project / "reports/sae" / f"L{layer}" / "spam.json").read_text())
        assert "eval_before_finetune" in tuned and tuned["training"]["dead_latents"] > 0
        assert (project / "data/sae" / f"L{layer}" / "grammar" / "sae" / "cfg.json").exists()
        assert (project / "data/sae" / f"L{layer}" / "pretrained" / "cards.parquet").exists()
    results = pl.read_parquet(project / "reports/probes/results.parquet")
    fitted = results.filter(pl.col("status") == "ok")
    assert set(fitted["regime"]) == {"normal", "scarcity", "imbalance", "noise", "shift"}
    assert set(fitted.filter(pl.col("regime") == "shift")["test_dataset"]) == {"grammar"}
    assert {"hidden", "sae_finetuned", "sae_pretrained_bin", "text"} <= set(
        fitted["representation"]
    )
    for regime in ("normal", "scarcity", "imbalance", "noise", "shift"):
        summary = json.loads((project / "reports/probes" / f"{regime}.json").read_text())
        assert summary["fits"] > 0 and summary["mean_auc"]
    assert (project / "reports/plots/scarcity.csv").read_text().startswith("series,level,roc_auc")


def test_second_repro_reruns_nothing(project):
    assert ran(dvc(project, "repro")) == set()


def test_a_probe_parameter_reruns_only_probe_stages(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["probe"]["sae_k"] = [1, 4]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stages = ran(dvc(project, "repro"))
    assert stages == {"probe@spam", "probe@grammar", "probe_report"}


def test_dvc_shows_the_probe_metrics_and_plots(project):
    assert "normal.json" in dvc(project, "metrics", "show")
    out = dvc(project, "plots", "show", "--json")
    assert "scarcity.csv" in out and "sae_k.csv" in out


def test_changing_one_dataset_reruns_only_its_stages(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"]["spam"]["max_examples"] = 30
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stages = ran(dvc(project, "repro"))
    assert {"prepare@spam", "extract@spam"} <= stages
    assert not {s for s in stages if "grammar" in s}
    assert not {s for s in stages if s.startswith(("train_sae", "extract_corpus"))}
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["datasets"]["spam"]["data"]["examples"] == 30
