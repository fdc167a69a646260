"""How sampling and MAML's update scale: env-steps/s and peak memory of the collector for
N simulations, and MAML-TRPO's meta-update time and peak memory against the number of
tasks in a meta-batch.

Collector: a Markov actor-critic (two hidden layers of 64, what multi-task PPO samples
with) in fewshot's collector, episodes of 100 steps, on cheetah-vel, ant-dir and
lava-crossing, for N = 16 ... 4,096. MAML: the cheetah-dir preset of
benchmarks/maml_training.py (20 episodes per task, two hidden layers of 100 ReLU units),
meta-batches of 10, 20, 40 and 80 tasks, one exact meta-update timed after sampling.

Each configuration runs in its own process, so its peak memory (the process's maximum
resident set) is its own; the memory a configuration adds is that peak minus the
process's resident set once the libraries are imported. Torch on one thread; MuJoCo on
every core while sampling, as in training.

    .venv/bin/python benchmarks/scaling.py [--parts collector maml] [--quick]
    .venv/bin/python benchmarks/scaling.py --table   # the tables of docs/performance.md

Writes benchmarks/results/scaling.json (command, machine, versions, load, rows); --table
prints that file's rows as markdown tables.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "scaling.json"
FAMILIES = ("cheetah-vel", "ant-dir", "lava-crossing")
SIZES = (16, 64, 256, 1024, 4096)
META_BATCHES = (10, 20, 40, 80)
HORIZON = 100
SECONDS = 3.0  # sampling time per collector configuration, at least


def peak_mib() -> float:
    """The process's peak resident set so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure_collector(family_name: str, num_envs: int) -> dict:
    import numpy as np
    import torch

    import tasks
    from fewshot.collect import Collector
    from fewshot.collect.agents import ActorCriticAgent
    from fewshot.collect.spec import env_spec
    from fewshot.nn.actor_critic import MarkovActorCritic

    torch.set_num_threads(1)
    base = current_mib()
    family = tasks.get(family_name)
    spec = env_spec(family)
    torch.manual_seed(0)
    agent = ActorCriticAgent(MarkovActorCritic(obs_size=spec.obs_size,
                                               action_size=spec.action_size,
                                               discrete=spec.discrete, hidden_sizes=(64, 64)))
    collector = Collector(family=family, num_envs=num_envs, horizon=HORIZON)
    task_list = family.sample(num_envs, "train", np.random.default_rng(0))
    collector.collect(agent, task_list, seed=0)  # warm-up
    steps_before, calls, started = collector.env_steps, 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS or calls < 2:
        collector.collect(agent, task_list, seed=calls + 1)
        calls += 1
    seconds = time.perf_counter() - started
    return {"part": "collector", "family": family_name, "num_envs": num_envs,
            "horizon": HORIZON, "collects": calls,
            "env_steps_per_s": (collector.env_steps - steps_before) / seconds,
            "libraries_mib": base, "peak_mib": peak_mib(), "added_mib": peak_mib() - base}


def measure_maml(meta_batch: int) -> dict:
    import numpy as np
    import torch

    import tasks
    from fewshot.algos.maml import build
    from fewshot.algos.maml.config import MAMLConfig
    from fewshot.algos.maml.trainer import adaptation_batches
    from fewshot.collect import Collector
    from fewshot.collect.spec import env_spec

    torch.set_num_threads(1)
    base = current_mib()
    family = tasks.get("cheetah-dir")
    config = MAMLConfig(meta_batch_size=meta_batch, episodes_per_task=20,
                        hidden_sizes=[100, 100], activation="relu")
    torch.manual_seed(0)
    learner = build(config, env_spec(family))
    collector = Collector(family=family, num_envs=meta_batch * 20)
    started = time.perf_counter()
    batches = adaptation_batches(learner, collector,
                                 family.sample(meta_batch, "train", np.random.default_rng(0)),
                                 config=config, num_steps=1, seeds=[1, 2], episodes_per_task=20)
    sampling = time.perf_counter() - started
    before_update = peak_mib()
    started = time.perf_counter()
    stats = learner.meta_update(batches[:-1], batches[-1])
    update = time.perf_counter() - started
    return {"part": "maml", "family": "cheetah-dir", "meta_batch": meta_batch,
            "episodes_per_task": 20, "env_steps": sum(int(b.valid_TN.sum()) for b in batches),
            "sampling_seconds": sampling, "update_seconds": update,
            "line_search_tries": stats["line_search_tries"], "libraries_mib": base,
            "peak_before_update_mib": before_update, "peak_mib": peak_mib(),
            "update_added_mib": peak_mib() - before_update}


def in_subprocess(kind: str, argument: str) -> dict:
    """One configuration in a fresh interpreter: its peak memory is its own."""
    done = subprocess.run([sys.executable, __file__, "--one", kind, argument],
                          capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        return {"part": kind, "argument": argument, "error": done.stderr.strip()[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def tables(result: dict) -> str:
    """The JSON's rows as markdown: the collector per family against N, MAML against the
    meta-batch, each with the cost per unit relative to the smallest size."""
    rows = [r for r in result["rows"] if "error" not in r]
    lines = ["| family | N | env-steps/s | x the smallest N's rate | peak MiB | added MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for family in dict.fromkeys(r["family"] for r in rows if r["part"] == "collector"):
        mine = [r for r in rows if r["part"] == "collector" and r["family"] == family]
        for r in mine:
            lines.append(f"| {family} | {r['num_envs']:,} | {r['env_steps_per_s']:,.0f} | "
                         f"{r['env_steps_per_s'] / mine[0]['env_steps_per_s']:.2f} | "
                         f"{r['peak_mib']:,.0f} | {r['added_mib']:,.0f} |")
    maml = [r for r in rows if r["part"] == "maml"]
    if maml:
        lines += ["", "| tasks | env-steps | sampling s | update s | update s per task "
                  "(x the smallest's) | line-search tries | update's added MiB | peak MiB |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        unit = maml[0]["update_seconds"] / maml[0]["meta_batch"]
        for r in maml:
            per_task = r["update_seconds"] / r["meta_batch"]
            lines.append(f"| {r['meta_batch']} | {r['env_steps']:,} | "
                         f"{r['sampling_seconds']:.1f} | {r['update_seconds']:.1f} | "
                         f"{per_task:.3f} ({per_task / unit:.2f}) | "
                         f"{r['line_search_tries']:g} | {r['update_added_mib']:,.0f} | "
                         f"{r['peak_mib']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("collector", "maml"),
                        default=["collector", "maml"])
    parser.add_argument("--quick", action="store_true",
                        help="N up to 256, meta-batches 10 and 20")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--table", action="store_true",
                        help="print the tables of --out (default: the committed results)")
    parser.add_argument("--one", nargs=2, metavar=("PART", "ARGUMENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(tables(json.loads(args.out.read_text())))
        return
    if args.one:
        kind, argument = args.one
        if kind == "collector":
            family, num_envs = argument.split(":")
            print(json.dumps(measure_collector(family, int(num_envs))))
        else:
            print(json.dumps(measure_maml(int(argument))))
        return
    from fewshot.provenance import provenance

    sizes = [n for n in SIZES if n <= 256] if args.quick else SIZES
    batches = META_BATCHES[:2] if args.quick else META_BATCHES
    rows = []
    if "collector" in args.parts:
        for family in FAMILIES:
            for n in sizes:
                rows.append(in_subprocess("collector", f"{family}:{n}"))
                print(json.dumps(rows[-1]), flush=True)
    if "maml" in args.parts:
        for k in batches:
            rows.append(in_subprocess("maml", str(k)))
            print(json.dumps(rows[-1]), flush=True)
    result = {**provenance(load_seconds=1.0), "torch_threads": 1, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
