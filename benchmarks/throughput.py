"""Env-steps per second of the batched locomotion envs, side by side with gymnasium's
SyncVectorEnv and raw MuJoCo. Run: `.venv/bin/python benchmarks/throughput.py`
(`--quick` for a short run; `--help` for the other flags).

Configurations, for each family and number of environments N:
  a   our batched env (`family.make_vec`) with a small torch MLP policy in the loop
  b   gymnasium.vector.SyncVectorEnv of our reference env (`family.make_env`), same policy
  b2  SyncVectorEnv of gymnasium's own HalfCheetah-v5 / Ant-v5, same policy
  c   our batched env with no policy: the policy's actions, recorded on a rollout
      beforehand and cycled (physics and env bookkeeping only)
  d   raw mujoco.batch stepping with the same recorded actions written to ctrl, no env
      logic (no observation, reward, reset or checks)
  c-random, d-random  (c) and (d) with uniform random actions in the action box
  a-threads  (a) with torch's default thread count instead of 1; at N=64 only
  e   fewshot's collector running a Gaussian MLP agent of the same size (what every
      learner samples with: sampling, log-probabilities and recording included), one
      call collecting a whole episode in every simulation; e/a is the collector's cost
      over the bare loop
  a-overlap  (a) on two batched envs of N/2 simulations, one half's physics stepped on a
      worker thread (MuJoCo's batch releases the GIL) while the policy acts on the other
      half: how much of the policy's time can hide behind the physics
  a-split  (a) on two batched envs of N/2 simulations, MuJoCo on one thread each, each
      half run by its own policy loop on its own Python thread (10 steps per call)
  f   envpool's HalfCheetah-v5 / Ant-v5 (gymnasium API, synchronous, every core), same
      policy; f-random with random actions. Only when envpool is installed (the `bench`
      extra: pip install -e '.[bench]'); fewshot itself never imports it

Physics cost depends on what the robot does. Uniform random actions in [-1, 1] keep the
cheetah bouncing with fewer ground contacts than the small actions of an untrained
policy, so MuJoCo steps faster under them. (a)/(c) therefore replays the policy's own
actions: the physics is the same kind of motion and the ratio isolates the cost of
running the policy. (a)/(c-random) is reported as well; it mixes that cost with the
cheaper physics of random actions.

Torch runs on one thread: the MuJoCo batch already steps on every available core, and
a policy this small gains nothing from more threads, while its thread pool competes
with MuJoCo's. The `a-threads` configuration measures that choice (recorded as a/a-threads).

Method: each configuration is built once per (family, N), warmed up, and sized to a fixed
number of vector steps that takes about `--seconds`. The timed runs are then repeated
`--repeats` times, interleaved across configurations (rotating their order), and the
median, min and max env-steps/s are reported. Episodes end and reset as the envs
normally do (next-step autoreset). Nothing is gated on timing: the exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from loops import ROBOTS, build_loops
from timing import rotated, timed_run, warm_up_and_size

import tasks
from fewshot.provenance import provenance
from tasks.locomotion.batched import available_cores

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "throughput.json"
DEFAULT_FAMILIES = ("cheetah-vel", "ant-dir")
DEFAULT_SIZES = (16, 64, 256)
QUICK_SIZES = (16, 64)
THREADS_CHECK_SIZE = 64  # the N at which (a) is also measured with torch's default threads

CONFIGS = {
    "a": "batched env + MLP policy",
    "a-threads": "batched env + MLP policy, torch default threads",
    "b": "SyncVectorEnv(reference env) + MLP policy",
    "b2": "SyncVectorEnv(gymnasium v5 env) + MLP policy",
    "c": "batched env, replayed policy actions",
    "d": "raw mujoco.batch, replayed policy actions",
    "c-random": "batched env, random actions",
    "d-random": "raw mujoco.batch, random actions",
    "e": "fewshot collector + Gaussian MLP agent (whole episodes)",
    "a-overlap": "two half batched envs + MLP policy, one half's physics under the "
                 "other's policy",
    "a-split": "two half batched envs, one thread each, each with its own policy loop",
    "f": "envpool (gymnasium API, every core) + MLP policy",
    "f-random": "envpool, random actions",
}
RATIOS = (("a", "b"), ("a", "b2"), ("a", "c"), ("c", "d"), ("a", "c-random"),
          ("c-random", "d-random"), ("a", "a-threads"), ("e", "a"),
          ("a-overlap", "a"), ("a-overlap", "c"), ("a-split", "a"),
          ("a-split", "c"), ("a-split", "f"), ("a", "f"), ("a-overlap", "f"), ("e", "f"),
          ("c-random", "f-random"))
TARGETS = (("cheetah-vel", 64, "a", "b", 3.0),
           *(("cheetah-vel", n, top, bottom, needed) for n in (64, 256)
             for top, bottom, needed in (("e", "f", 1.15), ("a", "f", 1.15), ("a", "c", 0.95))))



def measure_group(family_name: str, num_envs: int, repeats: int, target_seconds: float,
                  default_threads: int, configs: Sequence[str] = tuple(CONFIGS)) -> list[dict]:
    """Env-steps/s of the configurations for one family and N, repeats interleaved."""
    built = build_loops(family_name, num_envs, threads_check=default_threads
                        if num_envs == THREADS_CHECK_SIZE else None)
    loops = {key: loop for key, loop in built.items() if key in configs}
    for key in built.keys() - loops.keys():
        built[key].close()
    steps = {key: warm_up_and_size(loop, target_seconds) for key, loop in loops.items()}
    rates: dict[str, list[float]] = {key: [] for key in loops}
    others: dict[str, list[float]] = {key: [] for key in loops}
    for repeat in range(repeats):
        for key in rotated(list(loops), repeat):
            before = env_steps_taken(loops[key])
            seconds, other_cores = timed_run(loops[key], steps[key])
            taken = env_steps_taken(loops[key]) - before if before is not None \
                else num_envs * steps[key]
            rates[key].append(taken / seconds)
            others[key].append(other_cores)
    for loop in loops.values():
        loop.close()
    return [{"family": family_name, "num_envs": num_envs, "config": key,
             "description": CONFIGS[key], "calls_per_run": steps[key],
             "env_steps_per_s": summary(rates[key]),
             "other_processes_cores": summary(others[key])}
            for key in CONFIGS if key in rates]


def env_steps_taken(loop) -> int | None:
    """The env steps a loop that counts them has taken (the collector's: those of live
    episodes); None for loops that take one vector step of every env per call."""
    return getattr(loop, "env_steps", None)


def summary(values: Sequence[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


# Ratios and targets -----------------------------------------------------------------

def rates_of(results: list[dict], family: str, num_envs: int, config: str) -> dict | None:
    """A configuration's env-steps/s summary (median, min, max, runs), if it was measured."""
    return next((r["env_steps_per_s"] for r in results if
                 (r["family"], r["num_envs"], r["config"]) == (family, num_envs, config)), None)


def median_of(results: list[dict], family: str, num_envs: int, config: str) -> float | None:
    rates = rates_of(results, family, num_envs, config)
    return None if rates is None else rates["median"]


def ratio_table(results: list[dict]) -> list[dict]:
    groups = dict.fromkeys((r["family"], r["num_envs"]) for r in results)
    table = []
    for family, num_envs in groups:
        row = {"family": family, "num_envs": num_envs}
        for top, bottom in RATIOS:
            upper = median_of(results, family, num_envs, top)
            lower = median_of(results, family, num_envs, bottom)
            if upper is not None and lower is not None:
                row[f"{top}/{bottom}"] = upper / lower
        table.append(row)
    return table


def target_checks(results: list[dict], ratios: list[dict]) -> list[dict]:
    """Each target's ratio of medians, and the ratios of the two configurations' runs
    within each round (they ran minutes apart at most, under much the same load)."""
    checks = []
    for family, num_envs, top, bottom, needed in TARGETS:
        row = next((r for r in ratios if (r["family"], r["num_envs"]) == (family, num_envs)),
                   {})
        value = row.get(f"{top}/{bottom}")
        upper, lower = (rates_of(results, family, num_envs, c) for c in (top, bottom))
        rounds = [u / d for u, d in zip(upper["runs"], lower["runs"], strict=True)] \
            if upper and lower else []
        checks.append({"family": family, "num_envs": num_envs, "ratio": f"{top}/{bottom}",
                       "target": needed, "value": value,
                       "met": None if value is None else value >= needed,
                       "per_round": summary(rounds) if rounds else None})
    return checks


# Report -----------------------------------------------------------------------------

def print_rates(results: list[dict]) -> None:
    keys = [k for k in CONFIGS if any(r["config"] == k for r in results)]
    print("\nenv-steps/s: median over repeats, +- half the min-max range in % of it")
    print(f"{'family':<12} {'N':>4}  " + "  ".join(f"{k:>13}" for k in keys))
    for family, num_envs in dict.fromkeys((r["family"], r["num_envs"]) for r in results):
        cells = []
        for key in keys:
            row = next((r for r in results if (r["family"], r["num_envs"], r["config"])
                        == (family, num_envs, key)), None)
            cells.append(f"{'-':>13}" if row is None else f"{rate_cell(row):>13}")
        print(f"{family:<12} {num_envs:>4}  " + "  ".join(cells))


def rate_cell(row: dict) -> str:
    s = row["env_steps_per_s"]
    spread = 50 * (s["max"] - s["min"]) / s["median"]
    return f"{s['median']:,.0f} +-{spread:.0f}%"


def print_ratios(ratios: list[dict]) -> None:
    names = [f"{top}/{bottom}" for top, bottom in RATIOS]
    print("\nratios of medians")
    print(f"{'family':<12} {'N':>4}  " + "  ".join(f"{n:>11}" for n in names))
    for row in ratios:
        cells = [f"{row[n]:>11.2f}" if n in row else f"{'-':>11}" for n in names]
        print(f"{row['family']:<12} {row['num_envs']:>4}  " + "  ".join(cells))


def print_interference(results: list[dict]) -> None:
    busy = [c for r in results for c in r["other_processes_cores"]["runs"]]
    if busy and not math.isnan(busy[0]):
        print(f"\nother processes kept {statistics.mean(busy):.2f} of "
              f"{available_cores()} cores busy on average during timed runs "
              f"(max {max(busy):.2f}); medians are robust to some of that, not all")


def print_targets(checks: list[dict]) -> None:
    print("\ntargets (informational; nothing is gated on them)")
    for c in checks:
        where = f"{c['family']} N={c['num_envs']}: {c['ratio']} >= {c['target']}"
        if c["value"] is None:
            print(f"  {where}: not measured")
        else:
            rounds = c["per_round"]
            print(f"  {where}: {c['value']:.2f} -> {'MET' if c['met'] else 'NOT MET'} "
                  f"(per round: median {rounds['median']:.2f}, "
                  f"{rounds['min']:.2f}-{rounds['max']:.2f})")


# Main -------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"N in {list(QUICK_SIZES)} and one repeat (unless given)")
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES),
                        help="cheetah-* or ant-* families (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help=f"numbers of envs N (default: {list(DEFAULT_SIZES)})")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per configuration (default: 3, 1 with --quick)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="target wall time of one timed run (default: %(default)s)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        metavar="CONFIG", help="configurations to measure (default: all; "
                        "f and f-random need envpool)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON output (default: benchmarks/results/throughput.json)")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    for name in args.families:
        if name.split("-")[0] not in ROBOTS:
            parser.error(f"--families: {name!r} is not a cheetah-* or ant-* family")
        tasks.get(name)
    if args.repeats < 1 or any(n < 1 for n in args.sizes) or args.seconds <= 0:
        parser.error("--repeats, --sizes and --seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    load_before = list(os.getloadavg())
    results = []
    for family_name in args.families:
        for num_envs in args.sizes:
            print(f"measuring {family_name} N={num_envs} ...", flush=True)
            results += measure_group(family_name, num_envs, args.repeats, args.seconds,
                                     default_threads, args.configs)
    ratios = ratio_table(results)
    checks = target_checks(results, ratios)
    report = {
        **provenance(load_seconds=1.0),
        "settings": {"families": args.families, "sizes": args.sizes,
                     "repeats": args.repeats, "target_seconds_per_run": args.seconds,
                     "configs": args.configs,
                     "torch_threads": 1, "torch_default_threads": default_threads,
                     "mujoco_batch_nthread": available_cores(),
                     "wall_seconds": round(time.perf_counter() - started, 1),
                     "load_average_before": load_before,
                     "load_average_after": list(os.getloadavg())},
        "configs": CONFIGS,
        "results": results,
        "ratios": ratios,
        "targets": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_rates(results)
    print_ratios(ratios)
    print_interference(results)
    print_targets(checks)
    print(f"\nwall time {report['settings']['wall_seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
