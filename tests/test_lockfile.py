"""dvc.lock keeps to the stages of dvc.yaml."""

import subprocess
import sys
from pathlib import Path

import yaml

from saeprobe.lockfile import pipeline_stages, prune_lock

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """\
stages:
  shout:
    foreach: [a, b]
    do:
      cmd: echo ${item} > ${item}.txt
      outs:
        - ${item}.txt
"""


def lock_entry(name: str) -> dict:
    return {"cmd": f"echo {name} > {name}.txt", "outs": [{"path": f"{name}.txt"}]}


def test_pruning_drops_only_the_entries_of_stages_dvc_yaml_no_longer_has(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    (tmp_path / "dvc.yaml").write_text(PIPELINE)
    lock = {"schema": "2.0", "stages": {n: lock_entry(n) for n in ("shout@a", "shout@c")}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))

    assert prune_lock(tmp_path) == ["shout@c"]
    pruned = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert pruned == {"schema": "2.0", "stages": {"shout@a": lock_entry("shout@a")}}
    assert prune_lock(tmp_path) == []


def test_the_committed_lock_holds_only_stages_of_the_pipeline():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    stale = sorted(set(lock["stages"]) - pipeline_stages(ROOT))
    assert not stale, f"dvc.lock has entries of removed stages: {stale}"
