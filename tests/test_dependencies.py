"""The dependency audit: every stage of dvc.yaml declares exactly what it reads.

- code: the package modules its entry point imports, transitively (an AST walk);
- params: run in a sandbox whose params.yaml holds only the declared keys (every config
  reader is strict, so an undeclared key is an error), recording the keys it reads;
- files: the same sandbox holds only the declared data dependencies (an undeclared file is
  missing), and their access times show which declared ones were read.
A stage that reads something undeclared could serve a stale result; a declared input it
never reads reruns it for nothing."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from saeprobe import config
from tests.conftest import TINY_PARAMS, dvc
from tests.depgraph import (
    ROOT,
    code_closure,
    covered,
    entry_module,
    stage_body,
    stage_templates,
)

pytestmark = pytest.mark.slow

# One instance of each template: its loop variables.
INSTANCES = {
    "check_params": {},
    "prepare": {"key": "spam"},
    "extract": {"key": "spam"},
    "report": {},
    "prepare_corpus": {},
    "extract_corpus": {},
    "train_sae": {"item": "1"},
    "finetune_sae": {"item.dataset": "grammar", "item.layer": "1"},
    "sae_ce": {"item": "1"},
    "features": {"item.dataset": "grammar", "item.layer": "1"},
    "probe": {"item": "grammar"},
    "classifier": {"item": "grammar"},
    "probe_report": {},
    "unintended": {"item.dataset": "politician_gender", "item.layer": "1"},
    "selfreg": {"item.dataset": "grammar_cue", "item.layer": "1"},
    "multitoken": {"item": "grammar"},
    "transfer": {"key": "grammar-cue", "item.train": "grammar", "item.test": "grammar_cue"},
    "behaviour": {"item": "truthqa_tf"},
    "cross_model": {"item": "truthqa_tf"},
    "benchmark": {"item": "87_glue_cola", "benchmark.layer": "1"},
    "benchmark_report": {},
}
# Folders of user inputs: DVC cannot declare an input only some data sets have, so every
# stage that may read one depends on the whole folder (saeprobe.config refuses paths outside).
# And the first stages depend on check_params' marker only to run after it.
NOT_READ_BY_DESIGN = {config.DATA_INPUTS, config.SAE_INPUTS, "data/params_valid.json"}


def resolve(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], text)


def declared(stage: dict, variables: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(code deps, data deps, params keys) of one instance, interpolated."""
    body = stage_body(stage)
    deps = [resolve(d, variables) for d in body.get("deps", [])]
    code = [d for d in deps if d.split("/")[0] in ("saeprobe", "stages")]
    data = [d for d in deps if d not in code]
    params = [resolve(p, variables) for p in body.get("params", [])]
    return code, data, params


def code_problems(template: str, code: list[str]) -> list[str]:
    stage = stage_templates()[template]
    files = code_closure(entry_module(stage))
    problems = [f"{template} imports {f} undeclared" for f in sorted(files) if not covered(f, code)]
    for dep in code:
        path = ROOT / dep
        inside = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        unread = [p for p in inside if p.relative_to(ROOT) not in files]
        if unread:
            problems.append(f"{template} declares {dep} but never imports {unread[0].name}")
    return problems


@pytest.mark.parametrize("template", sorted(INSTANCES))
def test_every_stage_declares_exactly_the_code_it_imports(template):
    code, _, _ = declared(stage_templates()[template], INSTANCES[template])
    assert code_problems(template, code) == []


def test_the_code_audit_catches_a_deleted_dependency_line():
    code, _, _ = declared(stage_templates()["features"], INSTANCES["features"])
    code.remove("saeprobe/store.py")
    assert code_problems("features", code) == ["features imports saeprobe/store.py undeclared"]
    assert code_problems("features", [*code, "saeprobe/store.py", "saeprobe/regimes.py"]) == [
        "features declares saeprobe/regimes.py but never imports regimes.py"
    ]


def test_every_stage_template_is_audited():
    assert set(stage_templates()) == set(INSTANCES)


# ---------------------------------------------------------------------------------------
# Params and files, by running each stage in a sandbox


class Tracked(dict):
    """A params mapping that records the path of every value read (and `X#keys` when the
    keys of X are listed)."""

    def __init__(self, data: dict, path: str, log: set[str]):
        super().__init__(data)
        self.path, self.log = path, log

    def _child(self, key) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if isinstance(value, dict):
            return Tracked(value, self._child(key), self.log)
        self.log.add(self._child(key))
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def items(self):
        return [(key, self[key]) for key in dict.keys(self)]

    def values(self):
        return [self[key] for key in dict.keys(self)]

    def __iter__(self):
        self.log.add(f"{self.path}#keys")
        return super().__iter__()

    def keys(self):
        self.log.add(f"{self.path}#keys")
        return super().keys()


def restrict(params: dict, keys: list[str]) -> dict:
    """Only the declared keys (dotted paths) of `params`."""
    out: dict = {}
    for key in keys:
        parts = key.split(".")
        value = params
        for part in parts:
            value = value[part]
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def leaves(value, path: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in leaves(v, f"{path}.{k}")]
    return [path]


def params_problems(params: dict, keys: list[str], read: set[str]) -> list[str]:
    problems = []
    for key in keys:
        value = restrict(params, [key])
        for part in key.split("."):
            value = value[part]
        listed = f"{key}#keys" in read
        unread = [leaf for leaf in leaves(value, key) if leaf not in read]
        if unread and not listed:
            problems.append(f"declares '{key}' but never reads {unread[:3]}")
    return problems


def args_of(stage: dict, variables: dict[str, str]) -> list[str]:
    cmd = shlex.split(resolve(stage_body(stage)["cmd"], variables))  # as the shell splits it
    return cmd[cmd.index("-m") + 2 :]


@contextlib.contextmanager
def working_dir(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]


def atime_works(tmp: Path) -> bool:
    probe = tmp / "atime_probe"
    probe.write_text("x")
    os.utime(probe, (0, probe.stat().st_mtime))
    probe.read_text()
    return probe.stat().st_atime > 0


def run_in_sandbox(template: str, project: Path, sandbox: Path, monkeypatch) -> dict:
    stage = stage_templates()[template]
    variables = INSTANCES[template]
    _, data, keys = declared(stage, variables)
    params = yaml.safe_load(TINY_PARAMS.read_text())
    (sandbox / "params.yaml").write_text(yaml.safe_dump(restrict(params, keys)))
    for dep in data:
        source, target = project / dep, sandbox / dep
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        for path in files_under(target):
            os.utime(path, (0, path.stat().st_mtime))
    read: set[str] = set()
    load = config.load_params
    monkeypatch.setattr(config, "load_params", lambda *a: Tracked(load(*a), "", read))
    module = importlib.import_module(entry_module(stage))
    with working_dir(sandbox):
        module.main(*args_of(stage, variables))
    unread_files = [
        dep
        for dep in data
        if dep not in NOT_READ_BY_DESIGN
        and not any(p.stat().st_atime > 0 for p in files_under(sandbox / dep))
    ]
    return {"params": params_problems(params, keys, read), "files": unread_files}


@pytest.mark.parametrize("template", sorted(INSTANCES))
def test_every_stage_declares_exactly_the_params_and_files_it_reads(
    template, tiny_project, tmp_path, monkeypatch
):
    if not atime_works(tmp_path):
        pytest.skip("this file system does not record access times")
    found = run_in_sandbox(template, tiny_project, tmp_path, monkeypatch)
    assert found == {"params": [], "files": []}


def test_the_params_audit_catches_an_undeclared_key(tiny_project, tmp_path, monkeypatch):
    stages = stage_templates()
    original = stages["prepare"]["do"]["params"]
    stages["prepare"]["do"]["params"] = [p for p in original if p != "seed"]
    monkeypatch.setattr("tests.test_dependencies.stage_templates", lambda: stages)
    with pytest.raises(config.ConfigError, match="the section 'seed' is missing"):
        run_in_sandbox("prepare", tiny_project, tmp_path, monkeypatch)


def test_the_params_audit_catches_an_unread_key():
    params = yaml.safe_load(TINY_PARAMS.read_text())
    read = {f"probe_report.{key}" for key in params["probe_report"]} | {"seed"}
    assert params_problems(params, ["seed", "probe_report"], read) == []
    assert params_problems(params, ["seed", "probe_report", "features"], read) == [
        "declares 'features' but never reads ['features.saes', 'features.pooling', "
        "'features.top_n']"
    ]


def test_seeded_runs_give_identical_outputs(tiny_project):
    """Every stage again, forced: each output's hash is the same (timings aside)."""

    def hashes() -> dict[str, str]:
        lock = yaml.safe_load((tiny_project / "dvc.lock").read_text())["stages"]
        return {
            out["path"]: out.get("md5")
            for stage in lock.values()
            for out in stage.get("outs", [])
            if not out["path"].startswith(("reports/timing", "reports/sae"))
        }

    def sae_reports() -> dict[str, dict]:
        reports = {}
        for path in sorted((tiny_project / "reports" / "sae").rglob("*.json")):
            data = yaml.safe_load(path.read_text())
            data.get("training", {}).pop("timing", None)  # ce_L<layer>.json has none
            reports[str(path.relative_to(tiny_project))] = data
        return reports

    before, before_reports = hashes(), sae_reports()
    dvc(tiny_project, "repro", "--force")
    assert hashes() == before
    assert sae_reports() == before_reports


def test_the_readme_stage_graph_names_every_stage_family():
    readme = (ROOT / "README.md").read_text()
    graph = readme.split("```mermaid", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"\b([a-z_]+)\b", graph)) - {"flowchart", "lr"}
    assert named == set(stage_templates())
