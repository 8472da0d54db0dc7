"""Keep dvc.lock to the stages dvc.yaml defines.

DVC never drops the lock entry of a stage that left the pipeline (a data set or layer taken
out of params.yaml): the entry stays, misleads whoever reads the lock, and DVC parses and
rewrites it after every stage it runs. `make repro` calls this after a full `dvc repro`;
a removed stage that comes back is restored from DVC's run-cache.

    python -m saeprobe.lockfile [REPO_ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from saeprobe.io import atomic_path


def pipeline_stages(root: Path) -> set[str]:
    """The names of every stage of the repository's dvc.yaml (foreach items expanded)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.name for stage in repo.index.stages if hasattr(stage, "name")}


def stale_entries(lock: dict, stages: set[str]) -> list[str]:
    return [name for name in (lock.get("stages") or {}) if name not in stages]


def prune_lock(root: Path) -> list[str]:
    """Remove the entries of stages dvc.yaml no longer has; return their names."""
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    path = root / "dvc.lock"
    if not path.exists():
        return []
    # DVC's own round-trip YAML, so the lock keeps the layout DVC gives it.
    lock = parse_yaml_for_update(path.read_text(), str(path))
    stale = stale_entries(lock, pipeline_stages(root))
    if stale:
        for name in stale:
            del lock["stages"][name]
        with atomic_path(path) as tmp:
            tmp.write_text(dumps_yaml(lock))
    return stale


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    stale = prune_lock(root)
    if stale:
        print(f"dvc.lock: dropped {len(stale)} entries of stages no longer in dvc.yaml")


if __name__ == "__main__":
    main()
