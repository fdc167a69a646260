"""MAML's training iteration: sample K tasks' episodes, adapt, sample again (collect),
then meta-update through the adaptation (update).

Randomness: iteration i draws its tasks from default_rng([seed, i]) and the env and
action noise of adaptation phase p from derived_seed(seed, i, p), so the run's random
state after i iterations is the pair (seed, i) and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fewshot.algos.maml.advantages import with_advantages
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import MAML
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.registry import TrainContext
from fewshot.runtime import derived_seed


def adaptation_batches(learner: MAML, collector: Collector, tasks: Sequence[Any], *,
                       config: MAMLConfig, num_steps: int, seeds: Sequence[int],
                       episodes_per_task: int,
                       step_scales: Sequence[float] | None = None) -> list[Batch]:
    """Sample with the meta-parameters, adapt, sample again, ... `num_steps` times.

    Returns num_steps + 1 batches with advantages: batch i was sampled after i inner
    steps, `episodes_per_task` episodes of each task. seeds[i] fixes batch i's env and
    action noise; `step_scales[i]` multiplies the step size of inner step i (default 1).
    """
    params = [learner.policy.params()] * len(tasks)
    batches: list[Batch] = []
    for phase in range(num_steps + 1):
        batch = collector.collect(GaussianAgent(learner.policy, params), tasks,
                                  trials_per_task=episodes_per_task, seed=seeds[phase])
        batches.append(with_advantages(batch, gamma=config.gamma,
                                       gae_lambda=config.gae_lambda,
                                       normalize_advantages=config.normalize_advantages))
        if phase < num_steps:
            params = learner.adapt_tasks(batches, step_scales=step_scales)
    return batches


class MAMLTrainer:
    """One meta-batch per iteration: `meta_batch_size` tasks x `episodes_per_task`
    episodes per adaptation phase, then one TRPO (or PPO) meta-update."""

    def __init__(self, learner: MAML, config: MAMLConfig, context: TrainContext) -> None:
        self.learner, self.config, self.context = learner, config, context
        self.collector = Collector(family=context.family,
                                   num_envs=config.meta_batch_size * config.episodes_per_task,
                                   horizon=context.horizon, nthread=context.nthread)
        self.collector.refuse_unless_fits(batches=config.num_inner_steps + 1,
                                          network=learner.policy)
        self.env_steps = 0  # steps of the episodes collected (restored on resume)

    def collect(self, iteration: int) -> tuple[list[Batch], dict[str, float]]:
        config, seed = self.config, self.context.seed
        tasks = self.context.family.sample(config.meta_batch_size, "train",
                                           np.random.default_rng([seed, iteration]))
        steps = config.num_inner_steps
        batches = adaptation_batches(
            self.learner, self.collector, tasks, config=config, num_steps=steps,
            seeds=[derived_seed(seed, iteration, phase) for phase in range(steps + 1)],
            episodes_per_task=config.episodes_per_task)
        self.env_steps += sum(int(b.valid_TN.sum()) for b in batches)
        return batches, {f"return_step{i}": b.mean_return() for i, b in enumerate(batches)}

    def update(self, batches: list[Batch], iteration: int) -> dict[str, float]:
        stats = self.learner.meta_update(batches[:-1], batches[-1])
        return {"policy_std": float(self.learner.policy.log_std.detach().exp().mean()),
                **stats}

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"pre": f"{row['return_step0']:.1f}",
                "post": f"{row[f'return_step{self.config.num_inner_steps}']:.1f}"}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
