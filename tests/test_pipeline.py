"""`dvc repro` end to end on a temporary copy of the project with tiny params."""

import contextlib
import json
import re
import subprocess
import sys
import time

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
    assert set(fitted["regime"]) == {
        "normal",
        "scarcity",
        "imbalance",
        "noise",
        "shift",
        "transfer",
        "cross_model",
    }
    crossed = fitted.filter(pl.col("regime") == "cross_model")
    task = "truthqa_tf:smollm2-135m"  # did SmolLM2 answer the item right?
    assert set(crossed["train_dataset"]) == set(crossed["test_dataset"]) == {task}
    own = crossed.filter(pl.col("representation") == "hidden_smollm2-135m")
    assert set(own["layer"]) == {3, 30} and set(own["pooling"]) == {"answer"}
    assert {"hidden", "sae_pretrained", "sae_finetuned", "text"} < set(crossed["representation"])
    answers = json.loads((project / "reports/cross_model/truthqa_tf.behaviour.json").read_text())
    assert answers["model"] == "smollm2-135m" and answers["overall"]["items"] == 40
    cross = json.loads((project / "reports/cross_model/truthqa_tf.json").read_text())
    assert cross["task"] == task and {"own_hidden", "hidden", "tfidf"} <= set(
        cross["best_by_family"]
    )
    plot = (project / "reports/plots/cross_model/truthqa_tf.csv").read_text()
    assert plot.startswith("setting,family,auc,ci_low,ci_high")
    fitted = fitted.filter(pl.col("regime") != "cross_model")
    moved = fitted.filter(pl.col("regime") == "transfer")
    assert set(moved["train_dataset"]) == {"grammar"}
    # in distribution, moved to grammar_cue, moved to grammar's shifted split
    assert set(moved["test_dataset"]) == {"grammar", "grammar_cue", "grammar:ood"}
    assert {"logreg_l2", "sae_top4", "sae_top4_bin", "mosaic_lr_c1", "tfidf"} <= set(
        moved["method"]
    )
    transfer = json.loads((project / "reports/transfer/grammar-cue.json").read_text())
    assert transfer["n_target"] > 0 and transfer["settings"]
    drop = transfer["settings"][0]["drop"]
    assert drop["ci_low"] <= drop["mean"] <= drop["ci_high"]
    plot = (project / "reports/plots/transfer/grammar-cue.csv").read_text()
    assert plot.startswith("setting,family,in_distribution,transfer,drop")
    fitted = fitted.filter(pl.col("regime") != "transfer")
    tokens = fitted.filter(pl.col("representation") == "hidden_tokens")
    assert set(tokens["method"]) == {"attention", "concat_pca"}
    assert set(tokens["regime"]) == {"normal", "shift"} and set(tokens["layer"]) == {1, 3}
    multitoken = json.loads((project / "reports/multitoken/grammar.json").read_text())
    assert set(multitoken) == {"normal", "shift"} and multitoken["normal"]["L1"]["attention"]
    fitted = fitted.filter(pl.col("representation") != "hidden_tokens")
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
    page = (project / "reports/report.html").read_text()
    for section in ("data", "sae", "probes", "selfreg", "transfer", "cross_model", "classifiers"):
        assert f'id="{section}"' in page
    assert "has not run" not in page and "grammar-cue: grammar → grammar_cue" in page
    head = json.loads((project / "reports/headline.json").read_text())
    assert {"probes", "sae", "selfreg", "transfer", "cross_model", "classifier_test_auc"} <= set(
        head
    )


def test_second_repro_reruns_nothing(tiny_project):
    assert ran(dvc(tiny_project, "repro")) == set()


def test_a_probe_parameter_reruns_only_probe_stages(tiny_project):
    def change(params):
        params["probe"]["sae_k"] = [1, 4]

    with changed_params(tiny_project, change):
        stages = ran(dvc(tiny_project, "repro"))
        assert stages == {
            "check_params",
            "probe@spam",
            "probe@grammar",
            "transfer@grammar-cue",
            "transfer@grammar-ood",
            "multitoken@spam",
            "multitoken@grammar",
            "cross_model@truthqa_tf",
            "probe_report",
            "classifier@spam",
            "classifier@grammar",
            "benchmark@87_glue_cola",  # its summary reruns only if its fits change
            "report",
        }


def out_of_date(project) -> set[str]:
    """Stages `dvc status` lists as changed."""
    return {line.rstrip(":") for line in dvc(project, "status").splitlines() if line[:1].isalnum()}


def test_a_report_parameter_reruns_only_the_report(tiny_project):
    def change(params):
        params["probe_report"]["bootstrap"] = 50

    with changed_params(tiny_project, change):
        # benchmark_report summarizes the full benchmark as probe_report does
        assert out_of_date(tiny_project) == {"check_params", "probe_report", "benchmark_report"}


def test_a_fitting_parameter_puts_every_fitting_stage_out_of_date(tiny_project):
    def change(params):
        params["probe"]["c_grid_size"] = 3

    with changed_params(tiny_project, change):
        assert out_of_date(tiny_project) == {
            "check_params",
            "probe@spam",
            "probe@grammar",
            "transfer@grammar-cue",
            "transfer@grammar-ood",
            "multitoken@spam",
            "multitoken@grammar",
            "cross_model@truthqa_tf",
            "classifier@spam",
            "classifier@grammar",
            "benchmark@87_glue_cola",
        }


def test_an_experiment_on_a_report_parameter_runs_only_the_report(tiny_project):
    run_in(tiny_project, "git", "add", "-A")
    run_in(tiny_project, "git", "commit", "-qm", "after the first repro", "--allow-empty")
    try:
        out = dvc(tiny_project, "exp", "run", "-S", "probe_report.bootstrap=50")
        # the page reruns only if the report's numbers changed (tiny CIs may not)
        assert {"check_params", "probe_report", "benchmark_report"} <= ran(out)
        assert ran(out) <= {"check_params", "probe_report", "benchmark_report", "report"}
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


def test_dvc_shows_the_headline_metrics_and_renders_the_plots_offline(tiny_project):
    shown = dvc(tiny_project, "metrics", "show")
    assert "reports/headline.json" in shown and "probes.paper.sae_auc" in shown
    assert "reports/probes/metrics.json" not in shown  # details: shown on request
    assert "mean_auc" in dvc(tiny_project, "metrics", "show", "reports/probes/metrics.json")
    out = dvc(tiny_project, "plots", "show", "--json")
    assert "scarcity.csv" in out and "sae_k.csv" in out
    dvc(tiny_project, "plots", "show", "-o", "plots_page")
    page = (tiny_project / "plots_page" / "index.html").read_text()
    assert "vegaEmbed(" in page and 'data-library="vega@6.1.2"' in page
    assert "cdn.jsdelivr" not in page and "<script src=" not in page


def test_metrics_diff_and_plots_diff_compare_two_commits(tiny_project, tmp_path):
    run_in(tiny_project, "git", "add", "-f", "data/params_valid.json", "reports")
    run_in(tiny_project, "git", "add", "-A")
    run_in(tiny_project, "git", "commit", "-qm", "a run", "--allow-empty")

    def change(params):
        params["probe_report"]["quiver_sae_k"] = [1]
        params["probe_report"]["quiver_baselines"] = ["knn"]

    with changed_params(tiny_project, change):
        assert {"probe_report", "report"} <= ran(dvc(tiny_project, "repro"))
        diff = dvc(tiny_project, "metrics", "diff")
        assert "reports/headline.json" in diff and "probes.paper." in diff
        dvc(tiny_project, "plots", "diff", "HEAD", "-o", str(tmp_path / "diff"))
        page = (tmp_path / "diff" / "index.html").read_text()
        assert "vegaEmbed(" in page and "cdn.jsdelivr" not in page


def test_changing_one_dataset_reruns_only_its_stages(tiny_project):
    def change(params):
        params["datasets"]["spam"]["max_examples"] = 30

    with changed_params(tiny_project, change):
        stages = ran(dvc(tiny_project, "repro"))
        assert {"prepare@spam", "extract@spam"} <= stages
        # The transfer and cross-model stages read the SAEs of every layer through the whole
        # data/sae folder (DVC cannot template a list of layers into one stage's paths), so a
        # spam SAE reruns them too; no other stage of another data set reruns.
        assert not {s for s in stages if "grammar" in s and not s.startswith("transfer@")}
        assert not {s for s in stages if "truthqa" in s and not s.startswith("cross_model@")}
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


def test_a_queued_sweep_runs_every_value_and_restores_the_unchanged_stages(tiny_project):
    """The README's sweep recipe: queued experiments, one per value, each rerunning only the
    stages the swept key feeds; the rest come from the cache."""
    run_in(tiny_project, "git", "add", "-f", "data/params_valid.json", "reports")
    run_in(tiny_project, "git", "add", "-A")
    run_in(tiny_project, "git", "commit", "-qm", "before the sweep", "--allow-empty")
    dvc(tiny_project, "exp", "run", "--queue", "-S", "probe_report.bootstrap=20,30")
    dvc(tiny_project, "queue", "start", "-j", "1")
    deadline = time.monotonic() + 1200
    while re.search(r"\b(Queued|Running)\b", dvc(tiny_project, "queue", "status")):
        assert time.monotonic() < deadline, dvc(tiny_project, "queue", "status")
        time.sleep(5)
    status = dvc(tiny_project, "queue", "status")
    assert status.count("Success") == 2, status
    rows = json.loads(dvc(tiny_project, "exp", "show", "--json"))
    swept = {}
    for commit in rows:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                bootstrap = data["params"]["params.yaml"]["data"]["probe_report"]["bootstrap"]
                swept[bootstrap] = data["metrics"]["reports/headline.json"]["data"]
                logs = dvc(tiny_project, "queue", "logs", rev["name"])
                reports = {"probe_report", "benchmark_report", "report"}
                assert ran(logs) <= {"check_params", *reports}, ran(logs)
    assert set(swept) == {20, 30}
    assert all(head["probes"]["paper"]["sae_auc"] is not None for head in swept.values())
