"""Time the learners' updates against their previous implementations, on the same data,
side by side in one process (interleaved repeats, each from the same start).

MAML-TRPO meta-update (point-nav and cheetah-dir, 20 tasks x 20 episodes, two hidden
layers of 100 ReLU units as in benchmarks/maml_training.py):
  reference     the update as it was: the adapted policies computed twice (once for the
                'old' side of the KL), and an extra Fisher-vector product for the step's
                curvature after the conjugate gradient
  exact         fewshot's update, fisher_subsample 1: the old side taken from the same
                adaptation, the curvature from the conjugate gradient's residual
  subsample-N   fewshot's update with fisher_subsample N (the curvature estimated on
                every N-th episode of each task; an approximation)
  Agreement: the cosine between each one's conjugate-gradient direction and the
  reference's. Components (of `exact`): the update, its Fisher-vector products, and one
  meta-gradient backward pass. A product through the adaptation needs J v and J^T w,
  each at least such a pass, so the floor of an exact update is everything but the
  products plus two passes per product.

RL² update (cheetah-vel, 32 trials of 4 episodes, the recipe of
benchmarks/cheetah_vel_comparison.yaml):
  reference     nn.GRU's own autograd when replaying the trials
  fused         fewshot's GRU with its hand-written backward (fewshot/nn/gru.py)
  Agreement: the largest relative difference of the update's losses and weights.

Run: .venv/bin/python benchmarks/update_speed.py [--repeats 5] [--parts maml rl2]
Writes benchmarks/results/update_speed.json (command, machine, versions, load, timings,
ratios).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from timing import busy_cpu_seconds, own_cpu_seconds

import fewshot.algos.maml.maml as maml_module
import tasks
from fewshot.algos.maml import build as build_maml
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import MAML, flat, kl_hessian_vector_product, outer_terms, unflatten
from fewshot.algos.maml.trainer import adaptation_batches
from fewshot.algos.ppo.config import RL2Config
from fewshot.algos.ppo.ppo import PPO
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import ActorCriticAgent
from fewshot.collect.spec import env_spec
from fewshot.maths.optim import backtracking_line_search, conjugate_gradient
from fewshot.nn.actor_critic import RecurrentActorCritic
from fewshot.provenance import provenance

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "update_speed.json"
MAML_FAMILIES = ("point-nav", "cheetah-dir")
SUBSAMPLE = 5
GOALS = {"maml": 2.0, "rl2": 1.5}


# References: the implementations as they were -----------------------------------------

def reference_trpo_update(learner: MAML, pre: list[Batch], post: Batch,
                          directions: list[torch.Tensor]) -> None:
    """MAML-TRPO's meta-update as it was before the faster one (appends its direction)."""
    cfg = learner.config
    meta = learner.meta_parameters()
    names = list(meta)
    theta = torch.nn.utils.parameters_to_vector(meta.values()).detach()
    old = learner.old_distributions(pre, post)

    def terms_at(meta_dict, differentiable):
        adapted = learner.adapt_tasks(pre, meta_dict, differentiable=differentiable)
        return adapted, outer_terms(learner.policy, adapted, post, old)

    adapted, before = terms_at(meta, differentiable=True)
    params = list(meta.values())
    grad = flat(torch.autograd.grad(before.surrogate, params, retain_graph=True))
    fisher_vector = kl_hessian_vector_product(
        before.kl, [t for p in adapted for t in p.values()], params, cfg.cg_damping)
    direction = conjugate_gradient(fisher_vector, grad, cfg.cg_iterations).solution
    directions.append(direction)
    curvature = direction @ fisher_vector(direction)
    full_step = torch.sqrt(2 * cfg.max_kl / curvature.clamp_min(1e-12)) * direction

    def evaluate(candidate):
        with torch.no_grad():
            _, terms = terms_at(unflatten(candidate, meta, names), differentiable=False)
        return float(terms.surrogate), float(terms.kl)

    new_theta, _ = backtracking_line_search(
        evaluate, theta, full_step, objective_before=float(before.surrogate.detach()),
        max_kl=cfg.max_kl, ratio=cfg.line_search_ratio, max_tries=cfg.line_search_steps)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(new_theta, params)


class NativeGRUActorCritic(RecurrentActorCritic):
    """RL²'s actor-critic as it was: nn.GRU's own autograd also when training."""

    def forward(self, x_TNI, h_NH):
        out_TNH, h_1NH = self.gru(x_TNI, h_NH[None])
        return self.policy_head(out_TNH), self.value_head(out_TNH)[..., 0], h_1NH[0]


# Timing ------------------------------------------------------------------------------------

def time_interleaved(calls: dict[str, Callable[[], None]], repeats: int
                     ) -> tuple[dict[str, list[float]], float]:
    """Seconds of each call per repeat (order rotated every repeat), and the cores other
    processes kept busy meanwhile on average."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    machine_before, own_before, start = busy_cpu_seconds(), own_cpu_seconds(), time.time()
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            began = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - began)
            print(f"  {name:14s} {seconds[name][-1]:.3f} s", flush=True)
    elapsed = time.time() - start
    others = (busy_cpu_seconds() - machine_before) - (own_cpu_seconds() - own_before)
    return seconds, max(0.0, others / elapsed)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-30))


# MAML --------------------------------------------------------------------------------------

def maml_problem(family_name: str) -> tuple[MAMLConfig, dict, list[Batch]]:
    """The preset's config, a learner state after a few updates (so the batch is not the
    untrained policy's) and one iteration's batches (20 tasks x 20 episodes)."""
    family = tasks.get(family_name)
    config = MAMLConfig(meta_batch_size=20, episodes_per_task=20, hidden_sizes=[100, 100],
                        activation="relu")
    torch.manual_seed(0)
    learner = build_maml(config, env_spec(family))
    collector = Collector(family=family, num_envs=400)
    task_list = family.sample(20, "train", np.random.default_rng(0))
    batches = adaptation_batches(learner, collector, task_list, config=config, num_steps=1,
                                 seeds=[1, 2], episodes_per_task=20)
    return config, copy.deepcopy(learner.state_dict()), batches


def measure_maml(family_name: str, repeats: int) -> dict:
    config, state, batches = maml_problem(family_name)
    pre, post = batches[:-1], batches[-1]
    spec = env_spec(tasks.get(family_name))
    learners = {"reference": config, "exact": config,
                f"subsample-{SUBSAMPLE}": MAMLConfig(**{**vars(config),
                                                         "fisher_subsample": SUBSAMPLE})}
    built = {name: build_maml(cfg, spec) for name, cfg in learners.items()}
    directions: dict[str, list[torch.Tensor]] = {name: [] for name in built}

    def call(name: str) -> Callable[[], None]:
        learner = built[name]

        def run() -> None:
            learner.load_state_dict(state)
            if name == "reference":
                reference_trpo_update(learner, pre, post, directions[name])
                return
            original = maml_module.conjugate_gradient

            def capturing(*args, **kwargs):
                solved = original(*args, **kwargs)
                directions[name].append(solved.solution)
                return solved

            maml_module.conjugate_gradient = capturing
            try:
                learner.meta_update(pre, post)
            finally:
                maml_module.conjugate_gradient = original
        return run

    print(f"MAML-TRPO meta-update, {family_name}")
    seconds, others = time_interleaved({name: call(name) for name in built}, repeats)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    components = maml_components(built["exact"], state, pre, post, repeats)
    # A Fisher-vector product through the adaptation needs J v and J^T w, each at least a
    # meta-gradient backward pass: the floor of an exact update keeps everything else and
    # prices each product at two such passes.
    floor = (components["update"] - components["products"]
             + components["product_count"] * 2 * components["meta_gradient_backward"])
    return {"family": family_name, "tasks": 20, "episodes_per_task": 20,
            "steps": int(post.obs_TNO.shape[0]), "hidden": [100, 100],
            "seconds": seconds, "median_seconds": median,
            "speedup_vs_reference": {n: median["reference"] / median[n] for n in median
                                     if n != "reference"},
            "direction_cosine_vs_reference": {
                n: min(cosine(d, directions["reference"][0]) for d in directions[n])
                for n in directions if n != "reference"},
            "components_seconds": components,
            "exact_floor_seconds": floor,
            "best_exact_speedup_vs_reference": median["reference"] / floor,
            "other_processes_cores": others}


def maml_components(learner: MAML, state: dict, pre: list[Batch], post: Batch,
                    repeats: int) -> dict[str, float]:
    """Where the exact update's time goes (medians over `repeats`): the whole update, its
    Fisher-vector products (count and seconds), and one meta-gradient backward pass
    (the surrogate's gradient through the adaptation, J^T g)."""
    original = maml_module.conjugate_gradient
    totals, product_times, counts, backward_times = [], [], [], []

    def timed_cg(matvec, b, *args, **kwargs):
        spent = []

        def timed_matvec(v):
            began = time.perf_counter()
            out = matvec(v)
            spent.append(time.perf_counter() - began)
            return out

        solved = original(timed_matvec, b, *args, **kwargs)
        product_times.append(sum(spent))
        counts.append(len(spent))
        return solved

    maml_module.conjugate_gradient = timed_cg
    try:
        for _ in range(repeats):
            learner.load_state_dict(state)
            began = time.perf_counter()
            learner.meta_update(pre, post)
            totals.append(time.perf_counter() - began)
    finally:
        maml_module.conjugate_gradient = original
    for _ in range(repeats):
        learner.load_state_dict(state)
        meta = learner.meta_parameters()
        adapted = learner.adapt_tasks(pre, meta, differentiable=True)
        old = maml_module.distributions_on(learner.policy, adapted, post)
        surrogate = outer_terms(learner.policy, adapted, post, old).surrogate
        began = time.perf_counter()
        torch.autograd.grad(surrogate, list(meta.values()))
        backward_times.append(time.perf_counter() - began)
    return {"update": statistics.median(totals), "products": statistics.median(product_times),
            "product_count": statistics.median(counts),
            "meta_gradient_backward": statistics.median(backward_times)}


# RL² ---------------------------------------------------------------------------------------

def measure_rl2(repeats: int) -> dict:
    family = tasks.get("cheetah-vel")
    config = RL2Config(meta_batch_size=32, gae_lambda=0.95, episodes_per_trial=4)
    spec = env_spec(family)
    sizes = dict(obs_size=spec.obs_size, action_size=spec.action_size,
                 discrete=spec.discrete, hidden_size=config.hidden_size)
    torch.manual_seed(0)
    learners = {"reference": PPO(policy=NativeGRUActorCritic(**sizes), config=config),
                "fused": PPO(policy=RecurrentActorCritic(**sizes), config=config)}
    state = copy.deepcopy(learners["fused"].state_dict())
    collector = Collector(family=family, num_envs=32)
    batch = collector.collect(ActorCriticAgent(learners["fused"].policy),
                              family.sample(32, "train", np.random.default_rng(0)),
                              episodes_per_trial=4, seed=0)
    stats: dict[str, dict] = {}
    weights: dict[str, torch.Tensor] = {}

    def call(name: str) -> Callable[[], None]:
        def run() -> None:
            learner = learners[name]
            learner.load_state_dict(state)
            stats[name] = learner.update(copy.deepcopy(batch), torch.Generator().manual_seed(1))
            weights[name] = flat([p.detach() for p in learner.policy.parameters()])
        return run

    print("RL² update, cheetah-vel")
    seconds, others = time_interleaved({name: call(name) for name in learners}, repeats)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    loss_difference = max(abs(stats["fused"][k] - stats["reference"][k])
                          / max(abs(stats["reference"][k]), 1e-8) for k in stats["reference"])
    weight_difference = float((weights["fused"] - weights["reference"]).abs().max()
                              / weights["reference"].abs().max())
    return {"family": "cheetah-vel", "trials": 32, "episodes_per_trial": 4,
            "steps_per_trial": int(batch.valid_TN.shape[0]), "hidden_size": config.hidden_size,
            "ppo_epochs": config.ppo_epochs, "minibatches": config.minibatches,
            "seconds": seconds, "median_seconds": median,
            "speedup_vs_reference": {"fused": median["reference"] / median["fused"]},
            "max_relative_loss_difference": loss_difference,
            "max_relative_weight_difference": weight_difference,
            "other_processes_cores": others}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("maml", "rl2"), default=["maml", "rl2"])
    parser.add_argument("--families", nargs="+", default=list(MAML_FAMILIES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {**provenance(load_seconds=1.0), "torch_threads": 1, "goals": GOALS}
    if "maml" in args.parts:
        result["maml"] = [measure_maml(name, args.repeats) for name in args.families]
    if "rl2" in args.parts:
        result["rl2"] = measure_rl2(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in result.get("maml", []):
        ratios = ", ".join(f"{n} {r:.2f}x" for n, r in row["speedup_vs_reference"].items())
        cosines = ", ".join(f"{n} {c:.5f}" for n, c in
                            row["direction_cosine_vs_reference"].items())
        best = row["best_exact_speedup_vs_reference"]
        print(f"MAML {row['family']}: reference {row['median_seconds']['reference']:.2f} s; "
              f"{ratios}; cosine {cosines}; best exact {best:.2f}x")
    if "rl2" in result:
        row = result["rl2"]
        print(f"RL² cheetah-vel: reference {row['median_seconds']['reference']:.2f} s; fused "
              f"{row['speedup_vs_reference']['fused']:.2f}x; losses within "
              f"{row['max_relative_loss_difference']:.1e}, weights within "
              f"{row['max_relative_weight_difference']:.1e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
