"""TrialSampler: runs an actor-critic for whole trials, episodes of one task in a row.

A trial is `episodes_per_trial` consecutive episodes of one task in one simulation. A
recurrent policy's hidden state starts at zero and is carried across the episodes of a
trial; the env is reset at every episode boundary inside it. N trials (one per task given) are
stepped together. Like `Sampler`, it owns the env loop and never computes a loss.
Letters: T steps (of the longest trial), N trials, E episodes per trial, I inputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch

from fewshot.actor_critic import ActorCritic
from fewshot.sampler import box_action_scale, check_count, sampling_envs


@dataclass
class TrialBatch:
    """N trials as tensors [T, N, ...]; step t of trial n belongs to episode episode_TN."""

    inputs_TNI: torch.Tensor     # the policy's input at each step (recomputed in updates)
    state_TNH: torch.Tensor      # the policy's hidden state before each step ([T, N, 0]
                                 # for a Markov policy); truncated BPTT starts from it
    act_TN: torch.Tensor         # [T, N] choices, or [T, N, A] actions in policy units
    rew_TN: torch.Tensor
    logp_TN: torch.Tensor        # log-prob of the action under the sampling policy
    value_TN: torch.Tensor       # the critic's value at sampling time
    valid_TN: torch.Tensor       # the step belongs to the trial (not after its last episode)
    episode_TN: torch.Tensor     # index of the episode within the trial
    terminated_TN: torch.Tensor
    truncated_TN: torch.Tensor
    diverged_TN: torch.Tensor
    tasks: list[Any]
    episodes_per_trial: int

    def _per_episode(self, values_TN: torch.Tensor) -> torch.Tensor:
        """Sum of values_TN over the valid steps of each episode: [E, N]."""
        E = self.episodes_per_trial
        slot_TNE = torch.nn.functional.one_hot(self.episode_TN.clamp(max=E - 1), E)
        weighted = (values_TN * self.valid_TN).to(torch.float64)
        return (slot_TNE * weighted[..., None]).sum(0).T

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of every episode of every trial, [E, N]."""
        return self._per_episode(self.rew_TN)

    def episode_lengths(self) -> torch.Tensor:
        return self._per_episode(torch.ones_like(self.rew_TN)).long()

    def episode_flag(self, flags_TN: torch.Tensor) -> torch.Tensor:
        """Whether each episode raised the flag (terminated_TN, diverged_TN), [E, N]."""
        return self._per_episode(flags_TN.to(self.rew_TN.dtype)) > 0


class TrialSampler:
    """Collects one trial of `episodes_per_trial` episodes for each of `num_trials` tasks."""

    def __init__(self, *, family: Any, num_trials: int, episodes_per_trial: int,
                 horizon: int | None = None, nthread: int | None = None) -> None:
        check_count("TrialSampler", num_trials=num_trials, episodes_per_trial=episodes_per_trial)
        self.family = family
        self.num_trials = int(num_trials)
        self.episodes_per_trial = int(episodes_per_trial)
        self.envs = sampling_envs(family, self.num_trials, horizon=horizon, nthread=nthread)
        self.horizon = self.envs.horizon
        space = self.envs.single_action_space
        self.discrete = isinstance(space, gymnasium.spaces.Discrete)
        self.obs_size = int(np.prod(self.envs.single_observation_space.shape))
        self.task_size = len(family.params)  # what an oracle policy is told
        self.action_size = int(space.n) if self.discrete else int(np.prod(space.shape))
        self.action_center, self.action_half_range = (None, None) if self.discrete \
            else box_action_scale(space)
        self.env_steps = 0
        self.sample_seconds = 0.0

    def sample(self, policy: ActorCritic, tasks: Sequence[Any], *,
               seed: int) -> TrialBatch:
        """One trial per task; `seed` fixes env noise and action noise."""
        started = time.perf_counter()
        N, E = self.num_trials, self.episodes_per_trial
        if len(tasks) != N:
            raise ValueError(f"TrialSampler.sample: need {N} tasks, got {len(tasks)}")
        if policy.discrete != self.discrete:
            raise ValueError(f"TrialSampler.sample: the policy's actions are "
                             f"{'discrete' if policy.discrete else 'continuous'}, the "
                             f"family's {'discrete' if self.discrete else 'continuous'}")
        self.envs.set_tasks(list(tasks))
        task_NP = torch.as_tensor(np.stack(list(self.family.task_arrays(tasks).values()),
                                           axis=1), dtype=torch.float64)
        obs_NO, _ = self.envs.reset(seed=seed)
        generator = torch.Generator().manual_seed(seed)
        hidden_NH = policy.initial_state(N)
        prev_act = (torch.zeros(N, dtype=torch.long) if self.discrete
                    else torch.zeros(N, self.action_size))
        prev_rew_N = torch.zeros(N)
        new_episode_N = torch.ones(N)
        episode_N = np.zeros(N, dtype=np.int64)
        running_N = np.ones(N, dtype=bool)
        steps: dict[str, list] = {k: [] for k in ("x", "state", "act", "rew", "logp",
                                                  "value", "valid", "episode", "term",
                                                  "trunc", "diverged")}
        for _ in range(E * self.horizon):
            x_NI = policy.inputs(torch.as_tensor(obs_NO), prev_act, prev_rew_N, new_episode_N,
                                 task_NP)
            steps["state"].append(hidden_NH)
            with torch.no_grad():
                head_1NA, value_1N, hidden_NH = policy(x_NI[None], hidden_NH)
                act = policy.sample(head_1NA[0], generator)
                logp_N = policy.log_prob(head_1NA[0], act)
            obs_NO, rew_N, term_N, trunc_N, info = self.envs.step(self.env_actions(act))
            self.env_steps += int(running_N.sum())
            for key, value in (("x", x_NI), ("act", act), ("rew", rew_N), ("logp", logp_N),
                               ("value", value_1N[0]), ("valid", running_N.copy()),
                               ("episode", episode_N.copy()), ("term", term_N),
                               ("trunc", trunc_N), ("diverged", info["diverged"])):
                steps[key].append(torch.as_tensor(value))
            ended_N = (term_N | trunc_N) & running_N
            episode_N += ended_N
            running_N &= episode_N < E
            restart_N = ended_N & running_N
            if restart_N.any():
                obs_NO, _ = self.envs.reset(options={"reset_mask": restart_N})
            prev_act, prev_rew_N = act, torch.as_tensor(rew_N, dtype=torch.float32)
            new_episode_N = torch.as_tensor(ended_N, dtype=torch.float32)
            if not running_N.any():
                break
        stack = {k: torch.stack(v) for k, v in steps.items()}
        self.sample_seconds += time.perf_counter() - started
        return TrialBatch(inputs_TNI=stack["x"], state_TNH=stack["state"], act_TN=stack["act"],
                          rew_TN=stack["rew"].float(), logp_TN=stack["logp"],
                          value_TN=stack["value"], valid_TN=stack["valid"],
                          episode_TN=stack["episode"], terminated_TN=stack["term"],
                          truncated_TN=stack["trunc"], diverged_TN=stack["diverged"],
                          tasks=list(tasks), episodes_per_trial=E)

    def env_actions(self, act: torch.Tensor) -> np.ndarray:
        """Choices as they are; continuous actions mapped from [-1, 1] onto the env box."""
        if self.discrete:
            return act.numpy()
        return (self.action_center + self.action_half_range * act).numpy()
