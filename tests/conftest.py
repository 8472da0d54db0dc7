from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.manual_seed(0)


@pytest.fixture(scope="session")
def minilm():
    from saeprobe.config import ModelConfig
    from saeprobe.models import load_model

    return load_model(ModelConfig(name="minilm", dtype="float32", device="cpu"))


ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = ROOT / "tests" / "data" / "tiny_params.yaml"


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "saeprobe tests",
    "GIT_AUTHOR_EMAIL": "tests@saeprobe.invalid",
    "GIT_COMMITTER_NAME": "saeprobe tests",
    "GIT_COMMITTER_EMAIL": "tests@saeprobe.invalid",
}


def run_in(project: Path, *command: str) -> str:
    """Run a command in `project` with this interpreter first on PATH; fail with its output."""
    env = {**os.environ, **GIT_IDENTITY}
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def dvc(project: Path, *args: str) -> str:
    return run_in(project, sys.executable, "-m", "dvc", *args)


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _outputs_only(folder: Path):
    """Skip what a run of the pipeline wrote into a tracked folder: only git's files travel."""
    tracked = set(
        subprocess.run(
            ["git", "ls-files", "--", str(folder)], cwd=ROOT, capture_output=True, text=True
        ).stdout.split()
    )

    def ignore(directory: str, names: list[str]) -> list[str]:
        base = Path(directory).relative_to(ROOT)
        return [
            n
            for n in names
            if (ROOT / base / n).is_file()
            and str(base / n) not in tracked
            or (ROOT / base / n).is_dir()
            and not any(t.startswith(f"{base / n}/") for t in tracked)
        ]

    return ignore


def copy_project(target: Path) -> Path:
    """The pipeline's code and definition with the tiny params, as a git and DVC project."""
    shutil.copy(ROOT / "dvc.yaml", target)
    for name in ("saeprobe", "stages"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in (
        "data/raw",
        "data/published",
        "data/unintended",
        "data/transfer",
        "data/multitoken",
        "data/cross_model",
        "reports/selfreg",
        "reports/transfer",
        "reports/multitoken",
        "reports/cross_model",
    ):
        shutil.copytree(ROOT / name, target / name, ignore=_outputs_only(ROOT / name))
    shutil.copy(TINY_PARAMS, target / "params.yaml")
    shutil.copy(ROOT / ".gitignore", target / ".gitignore")
    run_in(target, "git", "init", "-q")
    dvc(target, "init", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", target / ".dvc" / "plots")
    shutil.copy(ROOT / ".dvc" / "config", target / ".dvc" / "config")
    run_in(target, "git", "add", "-A")
    run_in(target, "git", "commit", "-qm", "tiny pipeline")
    return target


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """The tiny pipeline, reproduced once for the whole session (tests that change its
    params restore them)."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    output = dvc(project, "repro")
    (project / "first_repro.log").write_text(output)
    return project
