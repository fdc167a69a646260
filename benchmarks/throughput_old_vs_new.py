"""Throughput of this source tree against an older revision, in one run: the same
`benchmarks/throughput.py` measurement, each tree with its own script, run alternately
(old, new, old, new, ...) so that machine noise hits both alike; the result is the
ratio new / old of the median env-steps/s of every configuration both trees measure.

Run (alone on the machine):
  .venv/bin/python benchmarks/throughput_old_vs_new.py --old a87cbb5 --rounds 3
Writes benchmarks/results/throughput_old_vs_new.json. The old revision is checked out
into a temporary git worktree, which is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fewshot.provenance import provenance

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "throughput_old_vs_new.json"


def measure(tree: Path, args: list[str], out: Path) -> dict:
    """One run of `tree`'s throughput.py with `tree` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, str(tree / "benchmarks" / "throughput.py"), *args,
                    "--out", str(out)], cwd=tree, env=env, check=True)
    return json.loads(out.read_text())


def medians(report: dict) -> dict[tuple[str, int, str], float]:
    return {(r["family"], r["num_envs"], r["config"]): r["env_steps_per_s"]["median"]
            for r in report["results"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="old/new pairs (default 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("throughput_args", nargs="*", default=["--families", "cheetah-vel",
                                                               "--sizes", "64", "256"],
                        help="arguments for throughput.py (after --)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    with tempfile.TemporaryDirectory() as scratch:
        old_tree = Path(scratch) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old],
                       cwd=REPO, check=True, capture_output=True)
        try:
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for i in range(args.rounds):
                for name, tree in (("old", old_tree), ("new", REPO)):
                    print(f"round {i + 1}/{args.rounds}: {name}", flush=True)
                    runs[name].append(medians(measure(tree, args.throughput_args,
                                                      Path(scratch) / f"{name}{i}.json")))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=REPO,
                           check=False, capture_output=True)
    common = sorted(set(runs["old"][0]) & set(runs["new"][0]))
    rows = []
    for key in common:
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        rows.append({"family": key[0], "num_envs": key[1], "config": key[2],
                     "old_median": old, "new_median": new, "new_over_old": new / old,
                     "old_runs": [r[key] for r in runs["old"]],
                     "new_runs": [r[key] for r in runs["new"]]})
    report = {**provenance(load_seconds=1.0), "old_revision": args.old,
              "rounds": args.rounds, "throughput_args": args.throughput_args, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{'family':<12} {'N':>4} {'config':<9} {'old':>10} {'new':>10} new/old")
    for r in rows:
        print(f"{r['family']:<12} {r['num_envs']:>4} {r['config']:<9} {r['old_median']:>10,.0f} "
              f"{r['new_median']:>10,.0f} {r['new_over_old']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
