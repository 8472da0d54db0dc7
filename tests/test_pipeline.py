"""`dvc repro` end to end on a temporary copy of the project with tiny params."""

import contextlib
import json
import subprocess
import sys

import polars as pl
import pytest
import yaml

from tests.conftest import dvc, ran, run_in

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def changed_params(project, change):
    """Apply `change` to the project's params for the block, then restore them."""
    path = project / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    change(params)
    path.write_text(yaml.safe_dump(params))
    try:
        yield
    finally:
        path.write_text(original)
        dvc(project, "repro")


def test_repro_builds_every_output(tiny_project):
    project = tiny_project
    assert {"prepare@spam", "extract@grammar", "report"} <= ran(
        (project / "first_repro.log").read_text()
    )
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["datasets"]["grammar"]["data"]["ood_examples"] == 20
    assert metrics["datasets"]["spam"]["extract"]["docs"] == 40
    timing = json.loads((project / "reports/timing/extract/spam.json").read_text())
    assert timing["tokens_per_s"] > 0
    for layer in (1, 3):
        pretrained = json.loads(
            (project / "reports/sae" / f"L{layer}" / "pretrained.json").read_text()
        )
        # Trained, it beats predicting the mean (FVU 1) with at most k latents per token.
        assert pretrained["eval"]["fvu"] < 0.9 and pretrained["eval"]["l0"] <= 8
        tuned = json.loads((project / "reports/sae" / f"L{layer}" / "spam.json").read_text())
        assert tuned["eval"]["fvu"] < tuned["eval_before_finetune"]["fvu"]
        assert (project / "data/sae" / f"L{layer}" / "grammar" / "sae" / "cfg.json").exists()
        cards = pl.read_parquet(project / "data/sae" / f"L{layer}" / "pretrained" / "cards.parquet")
        assert cards["context"].str.contains("«").all()
    results = pl.read_parquet(project / "reports/probes/results.parquet")
    assert results.filter(pl.col("status") == "failed").is_empty()
    fitted = results.filter(pl.col("status") == "ok")
    assert set(fitted["regime"]) == {"normal", "scarcity", "imbalance", "noise", "shift"}
    assert set(fitted.filter(pl.col("regime") == "shift")["test_dataset"]) == {"grammar"}
    assert {"hidden", "sae_finetuned", "sae_pretrained", "text"} == set(fitted["representation"])
    normal = fitted.filter(pl.col("regime") == "normal")
    assert {"sae_top4_bin", "mosaic_linear", "mosaic_tree"} <= set(normal["method"])
    assert {"mean", "max", "top2>0"} <= set(normal["pooling"])  # main, compared, MOSAIC
    others = fitted.filter(pl.col("regime") != "normal")
    assert not others["method"].str.ends_with("_bin").any() and set(others["pooling"]) <= {
        "mean",
        "",
    }
    summary = json.loads((project / "reports/probes/metrics.json").read_text())
    assert set(summary) == {"normal", "scarcity", "imbalance", "noise", "shift"}
    assert all(summary[r]["fits"] > 0 and summary[r]["mean_auc"] for r in summary)
    assert set(summary["scarcity"]["levels"]) == {"2", "8"}  # 4096 is infeasible
    assert summary["normal"]["levels"]["default"]["paper"]["quiver"]["settings"] > 0
    assert summary["normal"]["mosaic"] and summary["normal"]["pooling"]
    assert (project / "reports/plots/scarcity.csv").read_text().startswith("series,level,roc_auc")


def test_second_repro_reruns_nothing(tiny_project):
    assert ran(dvc(tiny_project, "repro")) == set()


def test_a_probe_parameter_reruns_only_probe_stages(tiny_project):
    def change(params):
        params["probe"]["sae_k"] = [1, 4]

    with changed_params(tiny_project, change):
        stages = ran(dvc(tiny_project, "repro"))
        assert stages == {"check_params", "probe@spam", "probe@grammar", "probe_report"}


def out_of_date(project) -> set[str]:
    """Stages `dvc status` lists as changed."""
    return {line.rstrip(":") for line in dvc(project, "status").splitlines() if line[:1].isalnum()}


def test_a_report_parameter_reruns_only_the_report(tiny_project):
    def change(params):
        params["probe_report"]["bootstrap"] = 50

    with changed_params(tiny_project, change):
        assert out_of_date(tiny_project) == {"check_params", "probe_report"}


def test_a_fitting_parameter_puts_every_fitting_stage_out_of_date(tiny_project):
    def change(params):
        params["probe"]["c_grid_size"] = 3

    with changed_params(tiny_project, change):
        assert out_of_date(tiny_project) == {"check_params", "probe@spam", "probe@grammar"}


def test_an_experiment_on_a_report_parameter_runs_only_the_report(tiny_project):
    run_in(tiny_project, "git", "add", "-A")
    run_in(tiny_project, "git", "commit", "-qm", "after the first repro", "--allow-empty")
    try:
        out = dvc(tiny_project, "exp", "run", "-S", "probe_report.bootstrap=50")
        assert ran(out) == {"check_params", "probe_report"}
    finally:
        run_in(tiny_project, "git", "checkout", "params.yaml")
        dvc(tiny_project, "repro")


def test_removing_a_regime_needs_no_change_to_the_pipeline(tiny_project):
    def change(params):
        del params["regimes"]["imbalance"]

    with changed_params(tiny_project, change):
        dvc(tiny_project, "repro")
        summary = json.loads((tiny_project / "reports/probes/metrics.json").read_text())
        assert "imbalance" not in summary and "noise" in summary


def test_dvc_shows_the_probe_metrics_and_plots(tiny_project):
    assert "metrics.json" in dvc(tiny_project, "metrics", "show")
    out = dvc(tiny_project, "plots", "show", "--json")
    assert "scarcity.csv" in out and "sae_k.csv" in out


def test_changing_one_dataset_reruns_only_its_stages(tiny_project):
    def change(params):
        params["datasets"]["spam"]["max_examples"] = 30

    with changed_params(tiny_project, change):
        stages = ran(dvc(tiny_project, "repro"))
        assert {"prepare@spam", "extract@spam"} <= stages
        assert not {s for s in stages if "grammar" in s}
        assert not {s for s in stages if s.startswith(("train_sae", "extract_corpus"))}
        metrics = json.loads((tiny_project / "reports" / "metrics.json").read_text())
        assert metrics["datasets"]["spam"]["data"]["examples"] == 30


def test_a_params_mistake_stops_dvc_repro_before_any_output_is_removed(tiny_project):
    probes = tiny_project / "data/probes/spam.parquet"
    before = probes.read_bytes()

    def change(params):
        params["probe"]["baselines"] = ["logreg_l3"]

    path = tiny_project / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    change(params)
    path.write_text(yaml.safe_dump(params))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"], cwd=tiny_project, capture_output=True, text=True
        )
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert "'probe.baselines' has 'logreg_l3'; did you mean 'logreg_l2'?" in result.stderr
    assert ran(result.stdout) == {"check_params"}
    assert probes.read_bytes() == before
    # DVC removed only the marker of the stage that failed; restored params rebuild it alone.
    assert ran(dvc(tiny_project, "repro")) == {"check_params"}


def test_a_second_clone_pulls_from_the_shared_remote_and_reruns_nothing(tiny_project, tmp_path):
    """The team's cache: git carries dvc.lock and the small uncached outputs (markers,
    metrics), a DVC remote carries the data; a new clone that pulls has nothing to rerun."""
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    dvc(tiny_project, "remote", "add", "--default", "shared", str(remote))
    # .gitignore keeps outputs out of git; the uncached ones travel with the commit
    run_in(tiny_project, "git", "add", "-f", "data/params_valid.json", "reports")
    run_in(tiny_project, "git", "add", "-A")
    run_in(tiny_project, "git", "commit", "-qm", "results and the shared remote")
    dvc(tiny_project, "push")
    run_in(tmp_path, "git", "clone", "-q", str(tiny_project), str(clone))
    assert not (clone / "data/probes/spam.parquet").exists()
    dvc(clone, "pull")
    assert (clone / "data/probes/spam.parquet").read_bytes() == (
        tiny_project / "data/probes/spam.parquet"
    ).read_bytes()
    assert "up to date" in dvc(clone, "status")
    assert ran(dvc(clone, "repro")) == set()
