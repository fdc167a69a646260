"""What a MAML run offers the harness: the learner that adapts by inner steps
("trained"), and its meta-policy never adapted ("non-adaptive")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fewshot.algos.maml.advantages import with_advantages
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import MAML
from fewshot.checks import check_count
from fewshot.collect import Batch
from fewshot.collect.agents import GaussianAgent
from fewshot.eval.learner import Collectors, Episodes, Learner, block_collectors, fixed_policy


class MAMLAdapter:
    """MAML at evaluation: one inner step after every `episodes_per_step` episodes of a
    trial, on those episodes, exactly as in meta-training (fresh episodes per step, each
    sampled with the current adapted policy, adaptation always from the meta-parameters
    through every step taken so far). Steps after the first take `later_step_scale` x
    the inner step size (1: as in meta-training)."""

    def __init__(self, *, name: str, learner: MAML, config: MAMLConfig,
                 episodes_per_step: int, later_step_scale: float = 1.0) -> None:
        check_count("MAMLAdapter", episodes_per_step=episodes_per_step)
        if not (math.isfinite(later_step_scale) and later_step_scale >= 0):
            raise ValueError(f"later_step_scale must be finite and >= 0, got "
                             f"{later_step_scale!r}")
        self.name, self.learner, self.config = name, learner, config
        self.episodes_per_step = int(episodes_per_step)
        self.later_step_scale = float(later_step_scale)

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _MAMLAdaptation:
        return _MAMLAdaptation(self, list(tasks), block_collectors(family, len(tasks), horizon))


class _MAMLAdaptation:
    def __init__(self, adapter: MAMLAdapter, tasks: list[Any], collectors: Collectors) -> None:
        self.adapter = adapter
        self.block = adapter.episodes_per_step
        self.tasks, self.collectors = tasks, collectors
        self.params = [adapter.learner.policy.params()] * len(tasks)
        self.steps: list[Batch] = []  # the episodes of each inner step taken so far

    def run_block(self, count: int, seed: int) -> Episodes:
        adapter = self.adapter
        agent = GaussianAgent(adapter.learner.policy, self.params)
        batch = self.collectors.get(count).collect(agent, self.tasks, trials_per_task=count,
                                                   seed=seed)
        if count == self.block:  # a shorter block ends the trial
            config = adapter.config
            self.steps.append(with_advantages(
                batch, gamma=config.gamma, gae_lambda=config.gae_lambda,
                normalize_advantages=config.normalize_advantages))
            scales = [1.0] + [adapter.later_step_scale] * (len(self.steps) - 1)
            self.params = adapter.learner.adapt_tasks(self.steps, step_scales=scales)
        return Episodes.from_batch(batch)


def trained(learner: MAML, config: MAMLConfig, *, name: str,
            episodes_per_step: int | None = None,
            later_step_scale: float = 1.0) -> MAMLAdapter:
    """One inner step after every `episodes_per_step` episodes (default: the run's
    episodes_per_task, the batch it was meta-trained to adapt from); steps after the
    first at `later_step_scale` x the inner lr."""
    return MAMLAdapter(name=name, learner=learner, config=config,
                       episodes_per_step=episodes_per_step or config.episodes_per_task,
                       later_step_scale=later_step_scale)


def non_adaptive(learner: MAML, config: MAMLConfig, *, name: str) -> Learner:
    """The meta-policy, never adapted: a flat curve is the expected answer."""
    return fixed_policy(learner.policy, name=name)
