"""Where the full benchmark (params-benchmark.yaml) spends its time, and how long all of it takes.

    python bench/benchmark.py --tasks 6 [--keep DIR]   # run an even sample of the tasks
    python bench/benchmark.py --tasks 6 --clone DIR     # the same in a clone made before
    python bench/benchmark.py --root DIR                # summarize a run made before

With --tasks N: clones the committed HEAD into a fresh folder, puts params-benchmark.yaml in
place of params.yaml with N of its tasks (evenly spaced over the list, which the task
numbers order), runs `make repro DVC_TARGETS=benchmark_report` there with every line of its
output stamped (DIR/repro-benchmark_report.log), then summarizes. With --clone DIR it runs
in a clone that has run before (after `bench/repro.py --keep DIR`, say), reusing its
pretrained SAE.

The summary reads each task's timing file (reports/timing/benchmark/<task>.json) and the
stamped log, and prints the wall time per task (DVC's own bookkeeping included), the share
of loading the model and SAE, preparing, computing hidden states and SAE codes, and
probing, the probe time per regime and per method summed over tasks, and the mean per task
times the preset's task count: the full run's expected wall time on this machine (the SAE's
pretraining, done once, apart).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml
from repro import run_stamped, stage_times

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "params-benchmark.yaml"
PARTS = ("load_s", "prepare_s", "hidden_states_and_sae_s", "probe_s")


def sample_preset(preset: Path, n: int, out: Path) -> list[str]:
    """The preset with n of its tasks, evenly spaced over its list."""
    params = yaml.safe_load(preset.read_text())
    tasks = params["benchmark"]["tasks"]
    step = max(1, math.ceil(len(tasks) / n))
    params["benchmark"]["tasks"] = tasks[::step][:n]
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    return params["benchmark"]["tasks"]


def summarize(root: Path, all_tasks: int) -> None:
    timings = {
        path.stem: json.loads(path.read_text())
        for path in sorted((root / "reports" / "timing" / "benchmark").glob("*.json"))
    }
    if not timings:
        raise SystemExit(f"{root}: no reports/timing/benchmark/*.json; did benchmark@ run?")
    wall = {}
    log = root / "repro-benchmark_report.log"
    if log.exists():
        _, per_stage, _ = stage_times(log.read_text(errors="replace").splitlines())
        wall = {
            name.split("@", 1)[1]: s
            for name, s in per_stage.items()
            if name.startswith("benchmark@")
        }
        other = {name: s for name, s in per_stage.items() if not name.startswith("benchmark@")}
        print("stages other than benchmark@ (once per run):")
        for name, seconds in sorted(other.items(), key=lambda kv: -kv[1]):
            print(f"  {seconds:6d} s  {name}")
    print(f"\n{'task':32s} {'docs':>5s} {'wall s':>7s} " + " ".join(f"{p[:-2]:>9s}" for p in PARTS))
    for task, t in timings.items():
        parts = " ".join(f"{t.get(p, 0):9.1f}" for p in PARTS)
        print(f"{task:32s} {t['docs']:5d} {wall.get(task, float('nan')):7.0f} {parts}")
    n = len(timings)
    totals = {p: sum(t.get(p, 0) for t in timings.values()) for p in PARTS}
    inside = sum(totals.values())
    print(f"\nshare of the tasks' own time ({inside:.0f} s over {n} tasks):")
    for part, seconds in totals.items():
        print(f"  {part[:-2]:24s} {seconds:8.1f} s  {seconds / inside:6.1%}")
    for key, title in (("by_kind", "regime/representation"), ("by_method", "regime/method")):
        summed: dict[str, float] = defaultdict(float)
        for t in timings.values():
            for name, seconds in t.get(key, {}).items():
                summed[name] += seconds
        fits = sum(summed.values())
        print(f"\nfit time by {title} (summed over workers and tasks, {fits:.0f} s):")
        for name, seconds in sorted(summed.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {name:28s} {seconds:8.1f} s  {seconds / fits:6.1%}")
    per_task = (sum(wall.values()) / len(wall)) if wall else inside / n
    source = "stage wall time" if wall else "the tasks' own time (no log)"
    print(
        f"\nmean per task ({source}): {per_task:.0f} s; all {all_tasks} tasks: "
        f"{per_task * all_tasks / 3600:.2f} h on this machine"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, help="run this many of the preset's tasks")
    parser.add_argument("--root", type=Path, help="only summarize the run in this folder")
    parser.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it")
    parser.add_argument("--clone", type=Path, help="run in this existing clone instead")
    args = parser.parse_args()
    all_tasks = len(yaml.safe_load(PRESET.read_text())["benchmark"]["tasks"])
    if args.root is None:
        if not args.tasks:
            parser.error("give --tasks N to run a sample, or --root DIR to summarize a run")
        scratch = Path(tempfile.mkdtemp(prefix="saeprobe-benchmark-"))
        folder = args.clone or args.keep or scratch / "clone"
        params = scratch / "params.yaml"
        tasks = sample_preset(PRESET, args.tasks, params)
        print(f"tasks: {tasks}")
        run_stamped(None if args.clone else ROOT, params, folder, target="benchmark_report")
        args.root = folder
        print(f"clone and log: {folder}\n")
    summarize(args.root, all_tasks)


if __name__ == "__main__":
    main()
