"""Time one MAML meta-gradient: ours (a loop over tasks, and a torch.func.vmap variant)
against `higher`, on the same sampled episodes, in one process; and TRPO's Fisher-vector
products, ours (J^T H' J) against differentiating the KL's gradient directly.

Also timed: a floor that no exact meta-gradient can beat in the same arithmetic. Every
method must compute each task's inner gradient at the meta-parameters and its outer
gradient at the adapted ones (the meta-gradient is (I - lr H) times the latter); the floor
computes just these two plain gradients and skips the Hessian-vector product that joins
them. If higher takes less than twice the floor, no method is twice as fast as higher.

Run: .venv/bin/python benchmarks/meta_gradient.py [--family cheetah-dir] [--repeats 5]
Writes benchmarks/results/meta_gradient.json (command, machine, versions, timings, ratios).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import higher
import numpy as np
import torch
from torch.func import functional_call, grad, vmap

import tasks
from fewshot.algos.maml.advantages import with_advantages
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import (
    MAML,
    adapt,
    flat,
    inner_loss,
    kl_hessian_vector_product,
    masked_mean,
    outer_terms,
)
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.nn.policy import GaussianMLP, log_prob
from fewshot.provenance import package_versions, provenance

INNER_LR = 0.1


def sample_episodes(family_name: str, num_tasks: int, episodes: int,
                    policy: GaussianMLP) -> Batch:
    family = tasks.get(family_name)
    collector = Collector(family=family, num_envs=num_tasks * episodes)
    task_list = family.sample(num_tasks, "train", np.random.default_rng(0))
    batch = collector.collect(GaussianAgent(policy, [policy.params()]), task_list,
                              trials_per_task=episodes, seed=0)
    return with_advantages(batch, gamma=0.99, gae_lambda=1.0, normalize_advantages=True)


def outer_loss(policy, params, episodes) -> torch.Tensor:
    mean, log_std = functional_call(policy, params, (episodes.obs_TNO,))
    ratio = torch.exp(log_prob(mean, log_std, episodes.act_TN) - episodes.logp_TN)
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


def floor_two_gradients(policy: GaussianMLP, pre: Batch, post: Batch) -> list[torch.Tensor]:
    """Not a meta-gradient: per task, the inner gradient at the meta-parameters and the
    outer gradient at the adapted parameters (detached), the least any exact method does."""
    params = policy.params()
    names = list(params)
    total = [torch.zeros_like(p) for p in params.values()]
    for k in range(pre.num_tasks):
        inner = torch.autograd.grad(inner_loss(policy, params, pre.task(k)),
                                    list(params.values()))
        adapted = {n: (params[n] - INNER_LR * g).detach().requires_grad_()
                   for n, g in zip(names, inner, strict=True)}
        outer = torch.autograd.grad(outer_loss(policy, adapted, post.task(k)),
                                    list(adapted.values()))
        total = [t + g for t, g in zip(total, outer, strict=True)]
    return total


FIELDS = ("obs_TNO", "act_TN", "logp_TN", "valid_TN", "adv_TN")


def ours_vmap(policy: GaussianMLP, pre: Batch, post: Batch) -> list[torch.Tensor]:
    """The same maths batched over tasks with torch.func.vmap(grad(...))."""
    params = policy.params()
    K, E = pre.num_tasks, pre.trials_per_task

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


# TRPO's Fisher-vector products: setup plus CG_PRODUCTS products, as in one update.
CG_PRODUCTS = 11


def fisher_products(policy: GaussianMLP, pre: Batch, post: Batch, *, direct: bool
                    ) -> list[torch.Tensor]:
    """ours: fewshot.maml.kl_hessian_vector_product (J^T H' J, second order);
    direct: differentiate the KL's gradient in the meta-parameters (third order)."""
    learner = MAML(policy=policy, config=MAMLConfig(inner_lr=INNER_LR))
    old = learner.old_distributions([pre], post)
    params = list(policy.parameters())
    adapted = learner.adapt_tasks([pre], differentiable=True)
    kl = outer_terms(policy, adapted, post, old).kl
    probes = torch.Generator().manual_seed(0)
    size = sum(p.numel() for p in params)
    vectors = [torch.randn(size, generator=probes) for _ in range(CG_PRODUCTS)]
    if direct:
        kl_grad = flat(torch.autograd.grad(kl, params, create_graph=True))
        return [flat(torch.autograd.grad(kl_grad @ v, params, retain_graph=True))
                for v in vectors]
    product = kl_hessian_vector_product(kl, [t for p in adapted for t in p.values()], params,
                                        damping=0.0)
    return [product(v) for v in vectors]


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
    timed = {**methods, "floor_two_gradients": floor_two_gradients}
    seconds: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.repeats):  # interleaved, so machine noise hits all alike
        for name, fn in timed.items():
            start = time.perf_counter()
            fn(policy, pre, post)
            seconds[name].append(time.perf_counter() - start)
    fvp_methods = {"fvp_ours": False, "fvp_direct": True}
    fvp_reference = fisher_products(policy, pre, post, direct=True)
    fvp_ours = fisher_products(policy, pre, post, direct=False)
    fvp_difference = max(float((a - b).abs().max() / b.abs().max())
                         for a, b in zip(fvp_ours, fvp_reference, strict=True))
    for name in fvp_methods:
        seconds[name] = []
    for _ in range(args.repeats):
        for name, direct in fvp_methods.items():
            start = time.perf_counter()
            fisher_products(policy, pre, post, direct=direct)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    result = {
        **provenance(load_seconds=1.0),
        "versions": package_versions(extra=("higher",)),
        "setup": {"family": args.family, "tasks": args.tasks, "episodes_per_task":
                  args.episodes, "steps": int(pre.obs_TNO.shape[0]), "hidden": [64, 64],
                  "inner_steps": 1, "second_order": True, "torch_threads": 1},
        "seconds": seconds, "median_seconds": median,
        "max_abs_difference_from_higher": agreement,
        "speedup_vs_higher": {n: median["higher"] / median[n] for n in ("ours_loop",
                                                                          "ours_vmap")},
        "floor": {"what": "two plain gradients per task, no Hessian-vector product: a "
                          "lower bound on any exact meta-gradient's time",
                  "higher_over_floor": median["higher"] / median["floor_two_gradients"],
                  "ours_over_floor": median["ours_loop"] / median["floor_two_gradients"],
                  "best_possible_speedup_vs_higher":
                      median["higher"] / median["floor_two_gradients"]},
        "fisher_vector_products": {
            "what": f"one TRPO update's worth: setup and {CG_PRODUCTS} products",
            "median_seconds": {n: median[n] for n in fvp_methods},
            "speedup_ours_vs_direct": median["fvp_direct"] / median["fvp_ours"],
            "max_relative_difference": fvp_difference},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name in methods:
        print(f"{name:10s} median {median[name]:.3f} s   max |grad - higher| "
              f"{agreement[name]:.2e}")
    for name, ratio in result["speedup_vs_higher"].items():
        print(f"higher / {name}: {ratio:.2f}x")
    floor = result["floor"]
    print(f"floor (two plain gradients per task) {median['floor_two_gradients']:.3f} s: "
          f"higher is {floor['higher_over_floor']:.2f}x the floor, ours "
          f"{floor['ours_over_floor']:.2f}x")
    fvp = result["fisher_vector_products"]
    print(f"Fisher-vector products ({fvp['what']}): ours {median['fvp_ours']:.3f} s, direct "
          f"{median['fvp_direct']:.3f} s, {fvp['speedup_ours_vs_direct']:.2f}x; max relative "
          f"difference {fvp_difference:.1e}")


if __name__ == "__main__":
    main()
