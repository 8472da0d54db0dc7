"""Where a whole `make repro` spends its time, stage by stage.

    python bench/repro.py [--params params-full.yaml] [--keep DIR]
    python bench/repro.py --log repro.log        # read a log this script wrote before

Clones the committed HEAD into a fresh folder (as a new user gets it), optionally puts a
params file in place of params.yaml, runs `make repro` there, stamps every line of its
output with the seconds since the start (kept as DIR/repro.log), and prints the install
time, the stages' total, the time per stage kind (prepare, extract, finetune_sae, probe,
...) with its share and count, and the slowest stages. A stage's time runs from DVC's
"Running stage" line to the next stage's (DVC's own bookkeeping included)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

STAGE_LINE = re.compile(r"^(\d+) Running stage '([^']+)':")
STAMP = re.compile(r"^(\d+) ")


def run_stamped(
    repo: Path | None, params: Path | None, folder: Path, target: str | None = None
) -> Path:
    """Clone `repo` into `folder` (None: `folder` is a clone already, whose earlier outputs
    DVC reuses), run `make repro` there (only `target` and what it needs, if given), write
    the stamped log (repro.log, or repro-<target>.log)."""
    if repo is not None:
        subprocess.run(["git", "clone", "-q", str(repo), str(folder)], check=True)
    if params is not None:
        shutil.copy(params, folder / "params.yaml")
    log = folder / (f"repro-{target}.log" if target else "repro.log")
    start = time.monotonic()
    with log.open("w", buffering=1) as out:  # line-buffered: the log can be watched
        proc = subprocess.Popen(
            ["make", "repro", *([f"DVC_TARGETS={target}"] if target else [])],
            cwd=folder,
            # DVC's own lines ("Running stage") would otherwise sit in its stdout buffer
            # while the stage runs, and be stamped late.
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(f"{int(time.monotonic() - start)} {line}")
        out.write(f"{int(time.monotonic() - start)} exit {proc.wait()}\n")
    if proc.returncode:
        sys.exit(f"make repro failed with exit code {proc.returncode}; see {log}")
    return log


def stage_times(lines: list[str]) -> tuple[int, dict[str, int], int]:
    """Seconds before the first stage, seconds per stage, and the last stamp."""
    starts = [(int(m[1]), m[2]) for m in map(STAGE_LINE.match, lines) if m]
    stamps = [int(m[1]) for m in map(STAMP.match, lines) if m]
    if not starts:
        raise SystemExit('no "Running stage" line in the log: did any stage run?')
    end = stamps[-1]
    per_stage = {}
    for (t, name), (t_next, _) in zip(starts, [*starts[1:], (end, "")], strict=True):
        per_stage[name] = t_next - t
    return starts[0][0], per_stage, end


def kind(stage: str) -> str:
    return stage.split("@")[0]


def report(lines: list[str], top: int = 10) -> None:
    before, per_stage, end = stage_times(lines)
    stages = sum(per_stage.values())
    print(f"install and setup {before:6d} s")
    print(f"stages            {stages:6d} s  ({stages / 60:.1f} min, {len(per_stage)} stages)")
    print(f"total             {end:6d} s  ({end / 60:.1f} min)\n")
    by_kind: dict[str, list[int]] = defaultdict(list)
    for name, seconds in per_stage.items():
        by_kind[kind(name)].append(seconds)
    print(f"{'stage kind':18s} {'seconds':>8s} {'share':>6s} {'count':>5s} {'mean':>6s}")
    for name, times in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        total = sum(times)
        mean = total / len(times)
        share = total / stages
        print(f"{name:18s} {total:8d} {share:6.1%} {len(times):5d} {mean:6.0f}")
    print(f"\nslowest {top} stages")
    for name, seconds in sorted(per_stage.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {seconds:6d} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=Path, help="a params file to run instead of params.yaml")
    parser.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it")
    parser.add_argument("--log", type=Path, help="only summarize a log written before")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    if args.log is None:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="saeprobe-repro-")) / "clone"
        params = args.params.resolve() if args.params else None
        args.log = run_stamped(args.repo, params, folder)
        print(f"clone and log: {folder}\n")
    report(args.log.read_text(errors="replace").splitlines())


if __name__ == "__main__":
    main()
