"""The learner protocol the harness scores: how each learner adapts, episode by episode.

A `Learner` starts one trial per task; the trial's `Adaptation` runs episodes with what
it has learnt so far and learns from them. The harness only calls these two methods, so
MAML, memory-based learners and fixed policies are scored the same way:

    adaptation = learner.start(family, tasks, horizon=None)  # one trial per task
    episodes = adaptation.run_block(count, seed)  # `count` episodes of every trial, then learn

Learners here: MAML (gradient steps), PPO-trained actor-critics (RL² adapts by memory;
the ppo and oracle baselines do not adapt), a fixed policy (the non-adaptive policy of a
MAML run, or the random policy) and a scripted oracle that is told the task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from fewshot.advantages import with_advantages
from fewshot.maml import MAML
from fewshot.policy import Params
from fewshot.ppo import PPO
from fewshot.runtime import derived_seed
from fewshot.sampler import Batch, Sampler
from fewshot.trial_sampler import TrialBatch, TrialSampler

ALL_AT_ONCE = 1 << 30  # the block of a learner whose episodes can all be sampled together


@dataclass
class Episodes:
    """What the harness records of a block: arrays [N trials, C episodes of the block]."""

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    diverged: np.ndarray

    @classmethod
    def from_batch(cls, batch: Batch) -> Episodes:
        """A Markov batch whose 'tasks' are the trials (episode n of it: trial n // C)."""
        C = batch.episodes_per_task
        return cls(*(x.numpy().reshape(-1, C) for x in (
            batch.episode_returns().double(), batch.episode_lengths(),
            batch.episode_flag(batch.terminated_TN), batch.episode_flag(batch.diverged_TN))))

    @classmethod
    def from_trials(cls, batch: TrialBatch) -> Episodes:
        return cls(*(x.numpy().T for x in (
            batch.episode_returns(), batch.episode_lengths(),
            batch.episode_flag(batch.terminated_TN), batch.episode_flag(batch.diverged_TN))))


class Adaptation(Protocol):
    """One learner's trials on a list of tasks (one trial per task)."""

    block: int
    """Episodes the learner runs with the same knowledge before it learns from them
    (ALL_AT_ONCE when it samples a whole trial in one go)."""

    def run_block(self, count: int, seed: int) -> Episodes:
        """Run `count` (at most `block`) episodes of every trial with what has been learnt
        so far, then learn from them."""
        ...


class Learner(Protocol):
    name: str

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> Adaptation:
        """Begin one trial per task, with nothing learnt about it yet."""
        ...


class SamplerCache:
    """Samplers built on first use, one per block size: `make(count)` builds the one for
    blocks of `count` episodes."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self.make = make
        self._samplers: dict[int, Any] = {}

    def get(self, count: int) -> Any:
        if count not in self._samplers:
            self._samplers[count] = self.make(count)
        return self._samplers[count]


def markov_samplers(family: Any, num_trials: int, horizon: int | None) -> SamplerCache:
    """Markov samplers for a fixed list of trials: `count` episodes of each per block."""
    return SamplerCache(lambda count: Sampler(family=family, num_tasks=num_trials,
                                              episodes_per_task=count, horizon=horizon))


class FixedPolicy:
    """A policy that never adapts: its curve R(k) is flat by construction."""

    def __init__(self, *, name: str, policy: nn.Module) -> None:
        self.name = name
        self.policy = policy

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _FixedAdaptation:
        return _FixedAdaptation(self.policy, [self.policy.params()] * len(tasks), list(tasks),
                                markov_samplers(family, len(tasks), horizon))


class _FixedAdaptation:
    block = ALL_AT_ONCE  # nothing changes between episodes

    def __init__(self, policy: nn.Module, params: list[Params], tasks: list[Any],
                 samplers: SamplerCache) -> None:
        self.policy, self.params, self.tasks, self.samplers = policy, params, tasks, samplers

    def run_block(self, count: int, seed: int) -> Episodes:
        batch = self.samplers.get(count).sample(self.policy, self.params, self.tasks, seed=seed)
        return Episodes.from_batch(batch)


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

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _FixedAdaptation:
        log_std = self.policy.log_std
        params = [{"goal": torch.tensor([t.goal_x, t.goal_y], dtype=log_std.dtype),
                   "log_std": log_std} for t in tasks]
        return _FixedAdaptation(self.policy, params, list(tasks),
                                markov_samplers(family, len(tasks), horizon))


class MAMLAdapter:
    """MAML at evaluation: one inner step after every `episodes_per_step` episodes of a
    trial, on those episodes, exactly as in meta-training (fresh episodes per step, each
    sampled with the current adapted policy, adaptation always from the meta-parameters
    through every step taken so far). Steps after the first take `later_step_scale` x
    the inner step size (1: as in meta-training)."""

    def __init__(self, *, name: str, learner: MAML, episodes_per_step: int, gamma: float,
                 gae_lambda: float, normalize_advantages: bool,
                 later_step_scale: float = 1.0) -> None:
        if isinstance(episodes_per_step, bool) or episodes_per_step < 1:
            raise ValueError(f"episodes_per_step must be an integer >= 1, got "
                             f"{episodes_per_step!r}")
        if not (math.isfinite(later_step_scale) and later_step_scale >= 0):
            raise ValueError(f"later_step_scale must be finite and >= 0, got "
                             f"{later_step_scale!r}")
        self.name = name
        self.learner = learner
        self.episodes_per_step = int(episodes_per_step)
        self.later_step_scale = float(later_step_scale)
        self.advantages = dict(gamma=gamma, gae_lambda=gae_lambda,
                               normalize_advantages=normalize_advantages)

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _MAMLAdaptation:
        return _MAMLAdaptation(self, list(tasks), markov_samplers(family, len(tasks), horizon))


class _MAMLAdaptation:
    def __init__(self, adapter: MAMLAdapter, tasks: list[Any], samplers: SamplerCache) -> None:
        self.adapter = adapter
        self.block = adapter.episodes_per_step
        self.tasks, self.samplers = tasks, samplers
        self.params = [adapter.learner.policy.params()] * len(tasks)
        self.steps: list[Batch] = []  # the episodes of each inner step taken so far

    def run_block(self, count: int, seed: int) -> Episodes:
        policy = self.adapter.learner.policy
        batch = self.samplers.get(count).sample(policy, self.params, self.tasks, seed=seed)
        if count == self.block:  # a shorter block ends the trial
            self.steps.append(with_advantages(batch, **self.adapter.advantages))
            scales = [1.0] + [self.adapter.later_step_scale] * (len(self.steps) - 1)
            self.params = self.adapter.learner.adapt_tasks(self.steps, step_scales=scales)
        return Episodes.from_batch(batch)


class TrialAdapter:
    """A PPO-trained actor-critic at evaluation: one trial of K + 1 episodes, sampled in
    one go. RL² carries its hidden state across them (its only way to adapt); the Markov
    baselines (ppo, oracle) do not adapt, so their curves are flat."""

    def __init__(self, *, name: str, learner: PPO) -> None:
        self.name = name
        self.learner = learner

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _TrialAdaptation:
        return _TrialAdaptation(self.learner, family, list(tasks), horizon)


class _TrialAdaptation:
    block = ALL_AT_ONCE

    def __init__(self, learner: PPO, family: Any, tasks: list[Any],
                 horizon: int | None) -> None:
        self.learner, self.family, self.tasks, self.horizon = learner, family, tasks, horizon
        self.started = False

    def run_block(self, count: int, seed: int) -> Episodes:
        if self.started:
            raise RuntimeError("a trial runs in one block; start a new one")
        self.started = True
        sampler = TrialSampler(family=self.family, num_trials=len(self.tasks),
                               episodes_per_trial=count, horizon=self.horizon)
        return Episodes.from_trials(sampler.sample(self.learner.policy, self.tasks, seed=seed))


class FinetuneAdapter:
    """Multi-task PPO fine-tuned at evaluation ("just fine-tune it"): each trial gets its
    own copy of the trained policy and a fresh optimizer, and after every
    `episodes_per_step` episodes takes one PPO update (the run's epochs and minibatches)
    on them. Episodes are sampled with the trial's current policy (PPO is on-policy)."""

    def __init__(self, *, name: str, learner: PPO, episodes_per_step: int) -> None:
        if isinstance(episodes_per_step, bool) or episodes_per_step < 1:
            raise ValueError(f"episodes_per_step must be an integer >= 1, got "
                             f"{episodes_per_step!r}")
        if learner.policy.memory:
            raise ValueError("finetune starts from a Markov policy (a ppo run)")
        self.name, self.learner = name, learner
        self.episodes_per_step = int(episodes_per_step)

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _FinetuneAdaptation:
        return _FinetuneAdaptation(self, family, list(tasks), horizon)


class _FinetuneAdaptation:
    def __init__(self, adapter: FinetuneAdapter, family: Any, tasks: list[Any],
                 horizon: int | None) -> None:
        trained = adapter.learner
        self.block = adapter.episodes_per_step
        self.tasks = tasks
        self.learners = [trained.copy_for_finetuning() for _ in tasks]
        # a block of one trial: `count` one-episode trials of its task
        self.samplers = SamplerCache(lambda count: TrialSampler(
            family=family, num_trials=count, episodes_per_trial=1, horizon=horizon))

    def run_block(self, count: int, seed: int) -> Episodes:
        sampler = self.samplers.get(count)
        blocks = []
        for i, (task, learner) in enumerate(zip(self.tasks, self.learners, strict=True)):
            batch = sampler.sample(learner.policy, [task] * count,
                                   seed=derived_seed(seed, i))
            if count == self.block:  # a shorter block ends the trial
                learner.update(batch, torch.Generator().manual_seed(derived_seed(seed, i, 1)))
            blocks.append(Episodes.from_trials(batch))
        return Episodes(*(np.concatenate([getattr(b, field).T for b in blocks])
                          for field in ("returns", "lengths", "terminated", "diverged")))
