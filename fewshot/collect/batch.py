"""Batch: what the collector hands to an algorithm, trials of episodes as tensors [T, N, ...].

Letters: T steps (of the longest trial), N simulations (trials), K tasks, J trials per
task (N = K x J; column n runs task n // J), E episodes per trial, O observation size,
A action size. A trial is E episodes of one task in a row in one simulation: the env is
reset between them, an agent's memory is not. Markov learners use E = 1 (each column one
episode); RL² uses J = 1 and E > 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class Batch:
    """Trials of K tasks, J per task, E episodes each, as tensors [T, N, ...]."""

    obs_TNO: torch.Tensor        # the observation the agent acted on (its dtype)
    act_TN: torch.Tensor         # [T, N] choices (Discrete) or [T, N, A] actions in policy units
    rew_TN: torch.Tensor         # float32
    logp_TN: torch.Tensor | None  # log-prob of the action under the acting policy, if it has one
    terminated_TN: torch.Tensor
    truncated_TN: torch.Tensor
    diverged_TN: torch.Tensor    # the physics blew up at this step (it also terminates)
    valid_TN: torch.Tensor       # the step belongs to its trial (not after the trial's end)
    episode_TN: torch.Tensor     # index of the step's episode within its trial
    outcomes: dict[str, torch.Tensor]  # the family's outcome flags, each [T, N]
    extras: dict[str, torch.Tensor]    # what the agent recorded per step, each [T, N, ...]
    tasks: list[Any]             # the K tasks
    trials_per_task: int         # J
    episodes_per_trial: int      # E
    adv_TN: torch.Tensor | None = field(default=None)  # filled by a learner

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def num_trials(self) -> int:
        return self.valid_TN.shape[1]

    def task(self, k: int) -> Batch:
        """Task k's J trials, as a Batch with K = 1."""
        cols = slice(k * self.trials_per_task, (k + 1) * self.trials_per_task)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value[:, cols]
            elif isinstance(value, dict):
                changes[f.name] = {name: x[:, cols] for name, x in value.items()}
        return replace(self, **changes, tasks=[self.tasks[k]])

    def trials(self, cols: Sequence[int]) -> Batch:
        """Trials (columns) `cols`, in that order, as a Batch of one trial per task."""
        cols = list(cols)
        if not cols or not all(0 <= c < self.num_trials for c in cols):
            raise ValueError(f"trials: columns must be a non-empty list in [0, "
                             f"{self.num_trials}), got {cols}")
        index = torch.tensor(cols)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value[:, index]
            elif isinstance(value, dict):
                changes[f.name] = {name: x[:, index] for name, x in value.items()}
        return replace(self, **changes, tasks=[self.tasks[c // self.trials_per_task]
                                               for c in cols], trials_per_task=1)

    def every_nth_trial(self, n: int) -> Batch:
        """Trials 0, n, 2n, ... of every task, as a Batch of the same K tasks."""
        J = self.trials_per_task
        if not 1 <= n <= J:
            raise ValueError(f"every_nth_trial: n must be in [1, {J}] (trials per task), "
                             f"got {n}")
        kept = range(0, J, n)
        sub = self.trials([k * J + j for k in range(self.num_tasks) for j in kept])
        return replace(sub, tasks=list(self.tasks), trials_per_task=len(kept))

    # Per episode ----------------------------------------------------------------------

    def per_episode(self, values_TN: torch.Tensor) -> torch.Tensor:
        """Sum of values_TN over the valid steps of each episode of each trial: [N, E],
        in float64."""
        E = self.episodes_per_trial
        weighted_TN = (values_TN.to(torch.float64) * self.valid_TN)
        if E == 1:
            return weighted_TN.sum(0)[:, None]
        slot_TNE = torch.nn.functional.one_hot(self.episode_TN.clamp(max=E - 1), E)
        return (slot_TNE * weighted_TN[..., None]).sum(0)

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of every episode of every trial, [N, E]."""
        return self.per_episode(self.rew_TN)

    def mean_return(self) -> float:
        return float(self.episode_returns().mean())

    def episode_lengths(self) -> torch.Tensor:
        """Steps in every episode, [N, E]."""
        return self.per_episode(torch.ones_like(self.rew_TN)).long()

    def episode_flag(self, flags_TN: torch.Tensor) -> torch.Tensor:
        """Whether each episode raised the flag at any of its steps, [N, E]."""
        return self.per_episode(flags_TN) > 0

    def episode_outcomes(self) -> dict[str, torch.Tensor]:
        """Each declared outcome: whether it happened in each episode, [N, E]."""
        return {name: self.episode_flag(flags) for name, flags in self.outcomes.items()}
