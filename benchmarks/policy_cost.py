"""Where the time of a policy-in-the-loop step goes: the MLP's share of each step, timed
inside the loop (between physics steps) and alone in a tight loop (warm caches).

throughput.py's a/c compares the loop with a policy against the env replaying recorded
actions; this splits one loop instead, so physics that differs between the two (other
motions, other contacts) does not enter. Per N and MuJoCo thread count: microseconds of
the policy call (observation to actions, the same 17-64-64-6 tanh MLP as throughput.py,
torch on one thread) inside the loop and alone, milliseconds of the env step, and the
policy's share of the loop. Writes benchmarks/results/policy_cost.json.

    .venv/bin/python benchmarks/policy_cost.py [--sizes 64 256] [--steps 600]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from loops import mlp_policy, policy_action

import tasks
from fewshot.provenance import provenance

OUT = Path("benchmarks/results/policy_cost.json")
WARMUP = 50


def split_loop(num_envs: int, nthread: int, steps: int) -> dict:
    family = tasks.get("cheetah-vel")
    env = family.make_vec(family.sample(num_envs, "train", np.random.default_rng(0)), seed=0,
                          nthread=nthread)
    policy = mlp_policy(env.single_observation_space.shape[0],
                        env.single_action_space.shape[0])
    obs, _ = env.reset(seed=0)
    policy_seconds = step_seconds = 0.0
    with torch.no_grad():
        for _ in range(WARMUP):
            obs = env.step(policy_action(policy, obs))[0]
        for _ in range(steps):
            start = time.perf_counter()
            action = policy_action(policy, obs)
            middle = time.perf_counter()
            obs = env.step(action)[0]
            policy_seconds += middle - start
            step_seconds += time.perf_counter() - middle
        start = time.perf_counter()
        for _ in range(steps):
            policy_action(policy, obs)
        alone = time.perf_counter() - start
    env.close()
    return {"num_envs": num_envs, "mujoco_threads": nthread,
            "policy_in_loop_us": 1e6 * policy_seconds / steps,
            "policy_alone_us": 1e6 * alone / steps,
            "env_step_ms": 1e3 * step_seconds / steps,
            "policy_share": policy_seconds / (policy_seconds + step_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [split_loop(n, nthread, args.steps) for n in args.sizes for nthread in (1, 2)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, **provenance(load_seconds=1.0)},
                                   indent=2) + "\n")
    for r in rows:
        print(f"N={r['num_envs']:>4} MuJoCo threads {r['mujoco_threads']}: policy "
              f"{r['policy_in_loop_us']:.0f} us in the loop, {r['policy_alone_us']:.0f} us "
              f"alone; env step {r['env_step_ms']:.2f} ms; policy share "
              f"{r['policy_share']:.1%}")


if __name__ == "__main__":
    main()
