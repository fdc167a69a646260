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
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium
import mujoco
import mujoco.batch
import numpy as np
import torch
from torch import nn

import tasks
from tasks.locomotion.batched import available_cores
from tasks.locomotion.robots import ANT, CHEETAH, Robot, quiet_mujoco

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "throughput.json"
DEFAULT_FAMILIES = ("cheetah-vel", "ant-dir")
DEFAULT_SIZES = (16, 64, 256)
QUICK_SIZES = (16, 64)
THREADS_CHECK_SIZE = 64  # the N at which (a) is also measured with torch's default threads

# Per robot (the family name's first word): the robot and gymnasium's own env of it.
ROBOTS: dict[str, tuple[Robot, str]] = {"cheetah": (CHEETAH, "HalfCheetah-v5"),
                                        "ant": (ANT, "Ant-v5")}

CONFIGS = {
    "a": "batched env + MLP policy",
    "a-threads": "batched env + MLP policy, torch default threads",
    "b": "SyncVectorEnv(reference env) + MLP policy",
    "b2": "SyncVectorEnv(gymnasium v5 env) + MLP policy",
    "c": "batched env, replayed policy actions",
    "d": "raw mujoco.batch, replayed policy actions",
    "c-random": "batched env, random actions",
    "d-random": "raw mujoco.batch, random actions",
}
RATIOS = (("a", "b"), ("a", "b2"), ("a", "c"), ("c", "d"), ("a", "c-random"),
          ("c-random", "d-random"), ("a", "a-threads"))
TARGETS = (("cheetah-vel", 64, "a", "b", 3.0), ("cheetah-vel", 64, "a", "c", 0.8))

WARMUP_STEPS = 20       # vector steps before sizing a configuration
PROBE_SECONDS = 0.25    # timing used to estimate a configuration's speed
MIN_TIMED_STEPS = 20    # vector steps per timed run, at least
ACTION_POOL = 64        # distinct precomputed action batches, cycled through


# Stepping loops: each call advances all N envs by one step ----------------------------

def mlp_policy(obs_size: int, action_size: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(obs_size, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, action_size))


def random_actions(low: np.ndarray, high: np.ndarray, num_envs: int, dtype: type,
                   ) -> np.ndarray:
    """ACTION_POOL random action batches [num_envs, A], uniform in [low, high]."""
    rng = np.random.default_rng(0)
    return rng.uniform(low, high, size=(ACTION_POOL, num_envs, len(low))).astype(dtype)


class PolicyLoop:
    """A vector env stepped with the MLP policy's actions."""

    def __init__(self, env: gymnasium.vector.VectorEnv, torch_threads: int = 1) -> None:
        self.env = env
        self.torch_threads = torch_threads
        self.policy = mlp_policy(env.single_observation_space.shape[0],
                                 env.single_action_space.shape[0])
        self.obs, _ = env.reset(seed=0)

    def __call__(self) -> np.ndarray:
        """One step; returns the actions taken."""
        action = self.policy(torch.as_tensor(self.obs, dtype=torch.float32)).numpy()
        self.obs = self.env.step(action)[0]
        return action

    def close(self) -> None:
        self.env.close()


def recorded_policy_actions(env: gymnasium.vector.VectorEnv) -> np.ndarray:
    """ACTION_POOL batches of the MLP policy's actions along a rollout of env."""
    policy_loop = PolicyLoop(env)
    with torch.no_grad():
        return np.stack([policy_loop() for _ in range(ACTION_POOL)])


class FixedActionLoop:
    """A vector env stepped with precomputed actions [ACTION_POOL, N, A], cycled."""

    torch_threads = 1

    def __init__(self, env: gymnasium.vector.VectorEnv, actions: np.ndarray) -> None:
        self.env = env
        self.actions = actions
        self.calls = 0
        env.reset(seed=0)

    def __call__(self) -> None:
        self.env.step(self.actions[self.calls % ACTION_POOL])
        self.calls += 1

    def close(self) -> None:
        self.env.close()


class RawMujocoLoop:
    """mujoco.batch alone: write ctrl, step frame_skip substeps; no observation, reward,
    reset or checks. Simulations start at the model's defaults and never reset.
    `actions` [ACTION_POOL, N, A] are cycled through."""

    torch_threads = 1

    def __init__(self, robot: Robot, actions: np.ndarray) -> None:
        self.batch = mujoco.batch.Batch(robot.model, nsim=actions.shape[1],
                                        nthread=available_cores())
        self.ctrl = self.batch.bind("ctrl")
        self.actions = actions.astype(np.float64)
        self.frame_skip = robot.frame_skip
        self.calls = 0

    def __call__(self) -> None:
        self.ctrl[:] = self.actions[self.calls % ACTION_POOL]
        self.batch.step(nstep=self.frame_skip)
        self.calls += 1

    def close(self) -> None:
        self.batch = None


def build_loops(family_name: str, num_envs: int, default_threads: int) -> dict[str, object]:
    """Every configuration's loop for one family and N, keyed as in CONFIGS."""
    with quiet_mujoco():  # gymnasium's Ant xml draws a compiler deprecation warning per env
        return _build_loops(family_name, num_envs, default_threads)


def _build_loops(family_name: str, num_envs: int, default_threads: int) -> dict[str, object]:
    family = tasks.get(family_name)
    robot, gym_id = ROBOTS[family_name.split("-")[0]]
    task_list = family.sample(num_envs, "train", np.random.default_rng(0))

    def batched_env() -> gymnasium.vector.VectorEnv:
        return family.make_vec(task_list, seed=0)

    reference_makers = [lambda task=task: family.make_env(task) for task in task_list]
    gymnasium_makers = [lambda: gymnasium.make(gym_id)] * num_envs
    replay_env, random_env = batched_env(), batched_env()
    space = random_env.single_action_space
    policy_actions = recorded_policy_actions(replay_env)
    uniform = random_actions(space.low, space.high, num_envs, np.float32)
    loops = {
        "a": PolicyLoop(batched_env()),
        "b": PolicyLoop(gymnasium.vector.SyncVectorEnv(reference_makers)),
        "b2": PolicyLoop(gymnasium.vector.SyncVectorEnv(gymnasium_makers)),
        "c": FixedActionLoop(replay_env, policy_actions),
        "d": RawMujocoLoop(robot, policy_actions),
        "c-random": FixedActionLoop(random_env, uniform),
        "d-random": RawMujocoLoop(robot, uniform),
    }
    if num_envs == THREADS_CHECK_SIZE:
        loops["a-threads"] = PolicyLoop(batched_env(), torch_threads=default_threads)
    return loops


# Timing -----------------------------------------------------------------------------

def seconds_for(loop, vector_steps: int) -> float:
    """Wall time of `vector_steps` calls of the loop, under no_grad, with the loop's
    torch thread count (set back to 1 afterwards)."""
    torch.set_num_threads(loop.torch_threads)
    try:
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(vector_steps):
                loop()
            return time.perf_counter() - start
    finally:
        torch.set_num_threads(1)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (or stolen by the hypervisor), from
    Linux's /proc/stat; nan elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def timed_run(loop, vector_steps: int) -> tuple[float, float]:
    """Wall seconds of a run, and the cores other processes kept busy meanwhile on
    average (they compete with the run for the CPUs)."""
    machine_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    seconds = seconds_for(loop, vector_steps)
    others = (busy_cpu_seconds() - machine_before) - (own_cpu_seconds() - own_before)
    return seconds, max(0.0, others / seconds)


def warm_up_and_size(loop, target_seconds: float) -> int:
    """Warm the loop up, then the number of vector steps that takes ~target_seconds."""
    seconds_for(loop, WARMUP_STEPS)
    steps, elapsed = 1, 0.0
    while elapsed < PROBE_SECONDS:
        steps *= 2
        elapsed = seconds_for(loop, steps)
    return max(MIN_TIMED_STEPS, math.ceil(target_seconds * steps / elapsed))


def rotated(keys: Sequence[str], by: int) -> list[str]:
    by %= len(keys)
    return [*keys[by:], *keys[:by]]


def measure_group(family_name: str, num_envs: int, repeats: int, target_seconds: float,
                  default_threads: int) -> list[dict]:
    """Env-steps/s of every configuration for one family and N, repeats interleaved."""
    loops = build_loops(family_name, num_envs, default_threads)
    steps = {key: warm_up_and_size(loop, target_seconds) for key, loop in loops.items()}
    rates: dict[str, list[float]] = {key: [] for key in loops}
    others: dict[str, list[float]] = {key: [] for key in loops}
    for repeat in range(repeats):
        for key in rotated(list(loops), repeat):
            seconds, other_cores = timed_run(loops[key], steps[key])
            rates[key].append(num_envs * steps[key] / seconds)
            others[key].append(other_cores)
    for loop in loops.values():
        loop.close()
    return [{"family": family_name, "num_envs": num_envs, "config": key,
             "description": CONFIGS[key], "env_steps_per_run": num_envs * steps[key],
             "env_steps_per_s": summary(rates[key]),
             "other_processes_cores": summary(others[key])}
            for key in CONFIGS if key in rates]


def summary(values: Sequence[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


# Ratios and targets -----------------------------------------------------------------

def median_of(results: list[dict], family: str, num_envs: int, config: str) -> float | None:
    for r in results:
        if (r["family"], r["num_envs"], r["config"]) == (family, num_envs, config):
            return r["env_steps_per_s"]["median"]
    return None


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


def target_checks(ratios: list[dict]) -> list[dict]:
    checks = []
    for family, num_envs, top, bottom, needed in TARGETS:
        row = next((r for r in ratios if (r["family"], r["num_envs"]) == (family, num_envs)),
                   {})
        value = row.get(f"{top}/{bottom}")
        checks.append({"family": family, "num_envs": num_envs, "ratio": f"{top}/{bottom}",
                       "target": needed, "value": value,
                       "met": None if value is None else value >= needed})
    return checks


# Provenance -------------------------------------------------------------------------

def memory_bytes() -> int | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * page_size


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "affinity_count": available_cores(), "memory_bytes": memory_bytes()}


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "fewshot": importlib.metadata.version("fewshot"), "git_commit": git_commit()}


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
            print(f"  {where}: {c['value']:.2f} -> {'MET' if c['met'] else 'NOT MET'}")


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
    load_before = load_average()
    results = []
    for family_name in args.families:
        for num_envs in args.sizes:
            print(f"measuring {family_name} N={num_envs} ...", flush=True)
            results += measure_group(family_name, num_envs, args.repeats, args.seconds,
                                     default_threads)
    ratios = ratio_table(results)
    checks = target_checks(ratios)
    report = {
        "command": shlex.join(sys.orig_argv),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "settings": {"families": args.families, "sizes": args.sizes,
                     "repeats": args.repeats, "target_seconds_per_run": args.seconds,
                     "torch_threads": 1, "torch_default_threads": default_threads,
                     "mujoco_batch_nthread": available_cores(),
                     "wall_seconds": round(time.perf_counter() - started, 1),
                     "load_average_before": load_before, "load_average_after": load_average()},
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
