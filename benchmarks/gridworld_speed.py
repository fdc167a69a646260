"""Batched gridworld against MiniGrid's own env, and DQN's updates with K = 1 and K = 9
members, each measured side by side in one run.

The same random policy (mostly forward) steps N LavaCrossing levels of the same size and
rivers (a) in fewshot's lava-crossing BatchedEnv (GridSim: all N levels per numpy call)
and (b) in gymnasium's SyncVectorEnv of N MiniGrid CrossingEnv (one Python env each,
MiniGrid's image observation only), both autoresetting. The two are interleaved over
ROUNDS rounds, so a change in the machine's load shifts both; the ratio of env-steps per
second is reported per round.

DQN: gradient steps per second of the Q-networks (double-Q targets, Huber loss, minibatch
of 128 lava-world transitions) with ensemble_size 1 and 9, on one torch thread (as a
sweep trial with one CPU has), interleaved the same way; the ratio says what the
vectorized ensemble costs against K separate runs (K x).

Writes benchmarks/results/gridworld_speed.json.

    .venv/bin/python benchmarks/gridworld_speed.py [--rounds 3] [--envs 64 1024]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium
import numpy as np
import torch

import tasks
from fewshot.algos.dqn.config import DQNConfig
from fewshot.algos.dqn.dqn import DQN
from fewshot.collect import env_spec
from fewshot.provenance import provenance

ACTION_WEIGHTS = np.array([0.2, 0.2, 0.5, 0.025, 0.025, 0.025, 0.025])
STEPS = 200  # steps of every env per measurement


def minigrid_vector(num_envs: int, size: int, rivers: int) -> gymnasium.vector.VectorEnv:
    from minigrid.core.world_object import Lava
    from minigrid.envs.crossing import CrossingEnv
    from minigrid.wrappers import ImgObsWrapper

    def make() -> gymnasium.Env:
        return ImgObsWrapper(CrossingEnv(size=size, num_crossings=rivers,
                                         obstacle_type=Lava))
    return gymnasium.vector.SyncVectorEnv([make] * num_envs)


def steps_per_second(env: gymnasium.vector.VectorEnv, num_envs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.choice(7, size=(STEPS, num_envs), p=ACTION_WEIGHTS)
    env.reset(seed=seed)
    started = time.perf_counter()
    for step in range(STEPS):
        env.step(actions[step])
    return STEPS * num_envs / (time.perf_counter() - started)


def updates_per_second(members: int, seconds: float = 3.0) -> float:
    """Gradient steps per second of DQN's Q-networks with `members` members."""
    family = tasks.get("lava-world")
    spec = env_spec(family)
    torch.manual_seed(0)
    model = DQN(DQNConfig(ensemble_size=members), spec)
    generator = torch.Generator().manual_seed(0)
    batch = 128
    sample = {"obs": torch.rand(batch, spec.obs_size, generator=generator) * 10,
              "next_obs": torch.rand(batch, spec.obs_size, generator=generator) * 10,
              "act": torch.randint(spec.action_size, (batch,), generator=generator),
              "rew": torch.rand(batch, generator=generator),
              "terminated": torch.rand(batch, generator=generator) < 0.1,
              "complete": torch.ones(batch, dtype=torch.bool),
              "mask": torch.rand(batch, members, generator=generator) < 0.5}
    model.td_step(sample)  # warm-up
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.td_step(sample)
        steps += 1
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--out", default="benchmarks/results/gridworld_speed.json")
    args = parser.parse_args()
    family = tasks.get("lava-crossing")
    size, rivers = family.default_task.size, family.default_task.rivers
    results = []
    for num_envs in args.envs:
        levels = family.sample(num_envs, "test-id", np.random.default_rng(0))
        ours = family.make_vec(levels, seed=0)
        theirs = minigrid_vector(num_envs, size, rivers)
        for round_ in range(args.rounds):
            batched = steps_per_second(ours, num_envs, round_)
            minigrid = steps_per_second(theirs, num_envs, round_)
            results.append({"envs": num_envs, "round": round_,
                            "fewshot_steps_per_s": round(batched),
                            "minigrid_steps_per_s": round(minigrid),
                            "ratio": round(batched / minigrid, 1)})
            print(results[-1], flush=True)
        ours.close()
        theirs.close()
    updates = []
    torch.set_num_threads(1)
    for round_ in range(args.rounds):
        one, nine = updates_per_second(1), updates_per_second(9)
        updates.append({"round": round_, "k1_updates_per_s": round(one, 1),
                        "k9_updates_per_s": round(nine, 1),
                        "k9_time_over_k1": round(one / nine, 2)})
        print(updates[-1], flush=True)
    report = {"family": family.name, "size": size, "rivers": rivers,
              "steps_per_env": STEPS, "results": results, "dqn_updates": updates,
              **provenance(load_seconds=1.0)}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
