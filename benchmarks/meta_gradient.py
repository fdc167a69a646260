"""Time one MAML meta-gradient: ours (a loop over tasks, and a torch.func.vmap variant)
against `higher`, on the same sampled episodes, in one process.

Run: .venv/bin/python benchmarks/meta_gradient.py [--family cheetah-dir] [--repeats 5]
Writes benchmarks/results/meta_gradient.json (command, machine, versions, timings, ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import higher
import numpy as np
import torch
from torch.func import functional_call, grad, vmap

import tasks
from fewshot.advantages import with_advantages
from fewshot.checkpoint import package_versions
from fewshot.maml import adapt, inner_loss, masked_mean
from fewshot.policy import GaussianMLP, log_prob
from fewshot.sampler import Batch, Sampler

INNER_LR = 0.1


def sample_episodes(family_name: str, num_tasks: int, episodes: int,
                    policy: GaussianMLP) -> Batch:
    family = tasks.get(family_name)
    sampler = Sampler(family=family, num_tasks=num_tasks, episodes_per_task=episodes)
    task_list = family.sample(num_tasks, "train", np.random.default_rng(0))
    batch = sampler.sample(policy, [policy.params()] * num_tasks, task_list, seed=0)
    return with_advantages(batch, gamma=0.99, gae_lambda=1.0, normalize_advantages=True)


def outer_loss(policy, params, episodes) -> torch.Tensor:
    mean, log_std = functional_call(policy, params, (episodes.obs_TNO,))
    ratio = torch.exp(log_prob(mean, log_std, episodes.act_TNA) - episodes.logp_TN)
    return -masked_mean(ratio * episodes.adv_TN, episodes.valid_TN)


def ours_loop(policy: GaussianMLP, pre: Batch, post: Batch) -> list[torch.Tensor]:
    """The shipped maths: fewshot.maml.adapt per task, second order."""
    params = policy.params()
    lrs = {n: torch.tensor(INNER_LR) for n in params}
    total = 0.0
    for k in range(pre.num_tasks):
        adapted = adapt(policy, params, lrs, [pre.task(k)], first_order=False)
        total = total + outer_loss(policy, adapted, post.task(k))
    return list(torch.autograd.grad(total / pre.num_tasks, list(params.values())))


FIELDS = ("obs_TNO", "act_TNA", "logp_TN", "valid_TN", "adv_TN")


def ours_vmap(policy: GaussianMLP, pre: Batch, post: Batch) -> list[torch.Tensor]:
    """The same maths batched over tasks with torch.func.vmap(grad(...))."""
    params = policy.params()
    K, E = pre.num_tasks, pre.episodes_per_task

    def by_task(x: torch.Tensor) -> torch.Tensor:  # [T, K*E, ...] -> [K, T, E, ...]
        return x.reshape(x.shape[0], K, E, *x.shape[2:]).transpose(0, 1)

    def per_task(p, *arrays):
        pre_k = SimpleNamespace(**dict(zip(FIELDS, arrays[:5], strict=True)))
        post_k = SimpleNamespace(**dict(zip(FIELDS, arrays[5:], strict=True)))
        g = grad(lambda q: inner_loss(policy, q, pre_k))(p)
        return outer_loss(policy, {n: p[n] - INNER_LR * g[n] for n in p}, post_k)

    arrays = [by_task(getattr(b, f)) for b in (pre, post) for f in FIELDS]
    losses = vmap(per_task, in_dims=(None, *[0] * len(arrays)))(params, *arrays)
    return list(torch.autograd.grad(losses.mean(), list(params.values())))


def with_higher(policy: GaussianMLP, pre: Batch, post: Batch) -> list[torch.Tensor]:
    """higher.innerloop_ctx with copy_initial_weights=False: the reference."""
    names = [n for n, _ in policy.named_parameters()]
    policy.zero_grad()
    for k in range(pre.num_tasks):
        optimizer = torch.optim.SGD(policy.parameters(), lr=INNER_LR)
        context = higher.innerloop_ctx(policy, optimizer, copy_initial_weights=False)
        with context as (fmodel, diffopt):
            fast = dict(zip(names, fmodel.parameters(), strict=True))
            diffopt.step(inner_loss(policy, fast, pre.task(k)))
            fast = dict(zip(names, fmodel.parameters(), strict=True))
            (outer_loss(policy, fast, post.task(k)) / pre.num_tasks).backward()
    return [p.grad.clone() for p in policy.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="cheetah-dir")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/meta_gradient.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    family = tasks.get(args.family)
    probe = family.make_vec([family.default_task])
    policy = GaussianMLP(obs_size=probe.single_observation_space.shape[0],
                         action_size=probe.single_action_space.shape[0], hidden_sizes=(64, 64))
    pre = sample_episodes(args.family, args.tasks, args.episodes, policy)
    post = sample_episodes(args.family, args.tasks, args.episodes, policy)
    methods = {"ours_loop": ours_loop, "ours_vmap": ours_vmap, "higher": with_higher}
    reference = [g.clone() for g in with_higher(policy, pre, post)]
    agreement = {name: max(float((a - b).abs().max()) for a, b in zip(
        fn(policy, pre, post), reference, strict=True)) for name, fn in methods.items()}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):  # interleaved, so machine noise hits all alike
        for name, fn in methods.items():
            start = time.perf_counter()
            fn(policy, pre, post)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    result = {
        "command": " ".join([sys.executable, *sys.argv]),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": len(os.sched_getaffinity(0))},
        "versions": {**package_versions(), "higher": metadata.version("higher")},
        "setup": {"family": args.family, "tasks": args.tasks, "episodes_per_task":
                  args.episodes, "steps": int(pre.obs_TNO.shape[0]), "hidden": [64, 64],
                  "inner_steps": 1, "second_order": True, "torch_threads": 1},
        "seconds": seconds, "median_seconds": median,
        "max_abs_difference_from_higher": agreement,
        "speedup_vs_higher": {n: median["higher"] / median[n] for n in ("ours_loop",
                                                                          "ours_vmap")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name in methods:
        print(f"{name:10s} median {median[name]:.3f} s   max |grad - higher| "
              f"{agreement[name]:.2e}")
    for name, ratio in result["speedup_vs_higher"].items():
        print(f"higher / {name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
