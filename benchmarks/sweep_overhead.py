"""What a sweep costs and what it buys, measured side by side in one run.

1. Overhead: the same 4 trials (MAML on cheetah-vel, small; train then evaluate) run
   (a) one after the other with `fewshot train` and `fewshot evaluate`, each a process
   of its own, and (b) as `fewshot sweep` with Ray given 1 CPU (so trials also run one at
   a time: taskset pins the sweep to one core). Ratio b / a is the sweep's overhead
   (Ray's start-up, Tune's bookkeeping, a worker per trial).
2. Parallelism: 2 trials with 1 CPU each in parallel (a sweep on 2 cores) against the
   same 2 trials one after the other with 2 CPUs each (nthread 2, update_threads 2).

The configurations are interleaved over ROUNDS rounds, so a change in the machine's load
shifts all of them alike; ratios are reported per round. Writes
benchmarks/results/sweep_overhead.json.

    .venv/bin/python benchmarks/sweep_overhead.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fewshot.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
FEWSHOT = [sys.executable, "-m", "fewshot.cli"]
BASE = {"algo": "maml", "family": "cheetah-vel", "iterations": 4, "checkpoint_every": 2,
        "horizon": 100, "maml": {"meta_batch_size": 8, "episodes_per_task": 8}}
EVALUATE = {"episodes": 1, "tasks": 4, "trials": 2, "splits": ["test-id"]}
GRID = {"maml.inner_lr": [0.05, 0.1]}


def spec(seeds: list[int], cpus: int) -> dict:
    return {"base": BASE, "grid": GRID, "seeds": seeds, "cpus_per_trial": cpus,
            "evaluate": EVALUATE}


def timed(command: list[str], *, pin: str | None = None) -> float:
    prefix = ["taskset", "-c", pin] if pin else []
    started = time.perf_counter()
    subprocess.run(prefix + command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def sweep_seconds(folder: Path, seeds: list[int], cpus: int, pin: str | None) -> float:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec(seeds, cpus)))
    out = folder / "out"
    return timed([*FEWSHOT, "sweep", str(path), "--out", str(out), "--no-progress"], pin=pin)


def sequential_seconds(folder: Path, seeds: list[int], cpus: int, pin: str | None) -> float:
    """The sweep's trials, one after the other, with the commands a user would type."""
    from fewshot.sweep.spec import parse_spec

    total = 0.0
    for trial in parse_spec(spec(seeds, cpus), base_dir=folder).trials:
        config = folder / f"{trial.name}.yaml"
        config.write_text(yaml.safe_dump(trial.config))
        run = folder / trial.name
        total += timed([*FEWSHOT, "train", "--config", str(config), "--out", str(run),
                        "--no-progress"], pin=pin)
        total += timed([*FEWSHOT, "evaluate", str(run), "--splits", *EVALUATE["splits"],
                        "--episodes", str(EVALUATE["episodes"]), "--tasks",
                        str(EVALUATE["tasks"]), "--trials", str(EVALUATE["trials"]),
                        "--no-progress"], pin=pin)
    return total


MEASURES = {
    # name: (what, seeds, cpus per trial, cores allowed)
    "sequential, 4 trials, 1 core": (sequential_seconds, [0, 1], 1, "0"),
    "sweep, 4 trials, Ray on 1 core": (sweep_seconds, [0, 1], 1, "0"),
    "sequential, 2 trials x 2 CPUs": (sequential_seconds, [0], 2, None),
    "sweep, 2 trials x 1 CPU in parallel": (sweep_seconds, [0], 1, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        names = list(MEASURES)[index % 2:] + list(MEASURES)[:index % 2]  # rotate the order
        seconds = {}
        for name in names:
            measure, seeds, cpus, pin = MEASURES[name]
            folder = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
            try:
                seconds[name] = measure(folder, seeds, cpus, pin)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            print(f"round {index}: {name}: {seconds[name]:.1f} s", flush=True)
        rounds.append({"seconds": seconds, "ratios": {
            "sweep overhead (Ray on 1 core / sequential on 1 core)":
                seconds["sweep, 4 trials, Ray on 1 core"] /
                seconds["sequential, 4 trials, 1 core"],
            "2 trials x 1 CPU in parallel / 2 trials x 2 CPUs one after the other":
                seconds["sweep, 2 trials x 1 CPU in parallel"] /
                seconds["sequential, 2 trials x 2 CPUs"]}})
    result = {"benchmark": "sweep_overhead", "base": BASE, "grid": GRID, "evaluate": EVALUATE,
              "rounds": rounds, **provenance(load_seconds=1.0)}
    out = ROOT / "benchmarks" / "results" / "sweep_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for index, entry in enumerate(rounds):
        for name, ratio in entry["ratios"].items():
            print(f"round {index}: {name}: {ratio:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
