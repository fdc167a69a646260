"""The learner protocol the harness scores: how each learner adapts, episode by episode.

A `Learner` starts one trial per task; the trial's `Adaptation` samples episodes with
what it has learnt so far and learns from them. The harness only calls these two
methods, so MAML, memory-based learners and fixed policies are scored the same way:

    adaptation = learner.start(tasks)            # one trial per task
    batch = adaptation.run_block(sampler, seed)  # `block` episodes of every trial, then learn

Learners here: MAML (gradient steps), a fixed policy (the non-adaptive policy of a run,
or the random policy) and a scripted oracle that is told the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn

from fewshot.advantages import with_advantages
from fewshot.maml import MAML
from fewshot.policy import Params
from fewshot.sampler import Batch, Sampler


class Adaptation(Protocol):
    """One learner's trials on a list of tasks (one trial per task)."""

    block: int
    """Episodes the learner runs with the same behaviour before it learns from them."""

    def run_block(self, sampler: Sampler, seed: int) -> Batch:
        """Sample sampler.episodes_per_task (at most `block`) episodes of every trial with
        what has been learnt so far, then learn from them."""
        ...


class Learner(Protocol):
    name: str

    def start(self, tasks: Sequence[Any]) -> Adaptation:
        """Begin one trial per task, with nothing learnt about it yet."""
        ...


class FixedPolicy:
    """A policy that never adapts: its curve R(k) is flat by construction."""

    def __init__(self, *, name: str, policy: nn.Module) -> None:
        self.name = name
        self.policy = policy

    def start(self, tasks: Sequence[Any]) -> _FixedAdaptation:
        return _FixedAdaptation(self.policy, [self.policy.params()] * len(tasks), list(tasks))


class _FixedAdaptation:
    block = 1 << 30  # nothing changes between episodes: sample as many together as asked

    def __init__(self, policy: nn.Module, params: list[Params], tasks: list[Any]) -> None:
        self.policy, self.params, self.tasks = policy, params, tasks

    def run_block(self, sampler: Sampler, seed: int) -> Batch:
        return sampler.sample(self.policy, self.params, self.tasks, seed=seed)


class RandomPolicy(nn.Module):
    """Actions N(0, 1) in the policy's normalised units, whatever the observation."""

    def __init__(self, *, action_size: int) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.zeros(action_size), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return obs.new_zeros(*obs.shape[:-1], self.log_std.shape[0]), self.log_std

    def params(self) -> Params:
        return dict(self.named_parameters())


class PointNavOracle(nn.Module):
    """Told the goal, steps straight at it (the largest step, or the exact remainder),
    with a little action noise. Its parameters are the goal: one set per task."""

    MAX_STEP = 0.1  # point-nav's largest step per axis; the policy acts in units of it

    def __init__(self, *, log_std: float = -4.0) -> None:
        super().__init__()
        self.goal = nn.Parameter(torch.zeros(2), requires_grad=False)
        self.log_std = nn.Parameter(torch.full((2,), log_std), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((self.goal - obs) / self.MAX_STEP).clamp(-1.0, 1.0), self.log_std


class Oracle:
    """The scripted oracle of a family whose best behaviour is known, told each task."""

    FAMILIES = ("point-nav",)

    def __init__(self, *, family: str) -> None:
        if family not in self.FAMILIES:
            raise ValueError(f"no scripted oracle for family {family!r}; families with one: "
                             f"{list(self.FAMILIES)}")
        self.name = "oracle"
        self.policy = PointNavOracle()

    def start(self, tasks: Sequence[Any]) -> _FixedAdaptation:
        log_std = self.policy.log_std
        params = [{"goal": torch.tensor([t.goal_x, t.goal_y], dtype=log_std.dtype),
                   "log_std": log_std} for t in tasks]
        return _FixedAdaptation(self.policy, params, list(tasks))


class MAMLAdapter:
    """MAML at evaluation: one inner step after every `episodes_per_step` episodes of a
    trial, on those episodes, exactly as in meta-training (fresh episodes per step, each
    sampled with the current adapted policy, adaptation always from the meta-parameters
    through every step taken so far)."""

    def __init__(self, *, name: str, learner: MAML, episodes_per_step: int, gamma: float,
                 gae_lambda: float, normalize_advantages: bool) -> None:
        if isinstance(episodes_per_step, bool) or episodes_per_step < 1:
            raise ValueError(f"episodes_per_step must be an integer >= 1, got "
                             f"{episodes_per_step!r}")
        self.name = name
        self.learner = learner
        self.episodes_per_step = int(episodes_per_step)
        self.advantages = dict(gamma=gamma, gae_lambda=gae_lambda,
                               normalize_advantages=normalize_advantages)

    def start(self, tasks: Sequence[Any]) -> _MAMLAdaptation:
        return _MAMLAdaptation(self, list(tasks))


class _MAMLAdaptation:
    def __init__(self, adapter: MAMLAdapter, tasks: list[Any]) -> None:
        self.adapter = adapter
        self.block = adapter.episodes_per_step
        self.tasks = tasks
        self.params = [adapter.learner.policy.params()] * len(tasks)
        self.steps: list[Batch] = []  # the episodes of each inner step taken so far

    def run_block(self, sampler: Sampler, seed: int) -> Batch:
        policy = self.adapter.learner.policy
        batch = sampler.sample(policy, self.params, self.tasks, seed=seed)
        if batch.episodes_per_task == self.block:  # a shorter block ends the trial
            self.steps.append(with_advantages(batch, **self.adapter.advantages))
            self.params = self.adapter.learner.adapt_tasks(self.steps)
        return batch
