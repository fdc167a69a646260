"""Sampler: runs a policy in a family's batched env and returns episodes as tensors.

It owns the environment loop and never computes a loss. For K tasks and E episodes per
task it steps N = K x E simulations together, one episode each; simulation n runs task
n // E. Letters: T steps, N episodes, K tasks, E episodes per task, O obs, A action.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import nn

from fewshot.policy import distribution, log_prob, sample_action


@dataclass
class Batch:
    """Episodes of K tasks, E each, as tensors [T, N, ...] with N = K x E."""

    obs_TNO: torch.Tensor
    act_TNA: torch.Tensor
    rew_TN: torch.Tensor
    logp_TN: torch.Tensor        # log-prob of the action under the sampling policy
    terminated_TN: torch.Tensor
    truncated_TN: torch.Tensor
    valid_TN: torch.Tensor       # the step belongs to the episode (not after its end)
    diverged_TN: torch.Tensor    # the physics blew up at this step (it also terminates)
    task_N: torch.Tensor         # index of the task in `tasks`
    tasks: list[Any]
    episodes_per_task: int
    adv_TN: torch.Tensor | None = field(default=None)  # filled by the learner

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, [N]."""
        return (self.rew_TN * self.valid_TN).sum(0)

    def mean_return(self) -> float:
        return float(self.episode_returns().mean())

    def episode_lengths(self) -> torch.Tensor:
        """Steps in each episode, [N]."""
        return self.valid_TN.sum(0)

    def episode_flag(self, flags_TN: torch.Tensor) -> torch.Tensor:
        """Whether each episode's flag (terminated_TN, diverged_TN, ...) was raised, [N]."""
        return (flags_TN & self.valid_TN).any(0)

    def task(self, k: int) -> Batch:
        """The E episodes of task k, as a Batch with K = 1."""
        cols = slice(k * self.episodes_per_task, (k + 1) * self.episodes_per_task)
        adv = None if self.adv_TN is None else self.adv_TN[:, cols]
        return replace(self, obs_TNO=self.obs_TNO[:, cols], act_TNA=self.act_TNA[:, cols],
                       rew_TN=self.rew_TN[:, cols], logp_TN=self.logp_TN[:, cols],
                       terminated_TN=self.terminated_TN[:, cols],
                       truncated_TN=self.truncated_TN[:, cols],
                       valid_TN=self.valid_TN[:, cols], diverged_TN=self.diverged_TN[:, cols],
                       task_N=self.task_N[cols],
                       tasks=[self.tasks[k]], adv_TN=adv)


class Sampler:
    """Collects `episodes_per_task` episodes for each of `num_tasks` tasks at once.

    Args:
        family: a tasks.TaskFamily.
        num_tasks, episodes_per_task: K and E; the env holds K x E simulations.
        horizon: steps per episode (default: the family's).
        nthread: MuJoCo threads (default: all available cores).

    The policy acts in normalised units: its action a in [-1, 1] maps linearly onto the
    env's action box, low + (a + 1) (high - low) / 2, and the env clips what falls
    outside. Batches hold the policy's own actions. (The locomotion boxes are [-1, 1],
    so there the map is the identity; point-nav's [-0.1, 0.1] needs it, as in the MAML
    code, or an initial std of 1 would be ten times the largest step.)
    """

    def __init__(self, *, family: Any, num_tasks: int, episodes_per_task: int,
                 horizon: int | None = None, nthread: int | None = None) -> None:
        check_count("Sampler", num_tasks=num_tasks, episodes_per_task=episodes_per_task)
        self.family = family
        self.num_tasks = int(num_tasks)
        self.episodes_per_task = int(episodes_per_task)
        self.envs = sampling_envs(family, num_tasks * episodes_per_task, horizon=horizon,
                                  nthread=nthread)
        self.horizon = self.envs.horizon
        space = self.envs.single_action_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise ValueError(f"Sampler: family {family.name!r} has a {space} action space; "
                             "this sampler's Gaussian policies need a Box action space")
        self.action_center, self.action_half_range = box_action_scale(space)
        self.env_steps = 0         # env-steps taken over the sampler's life
        self.sample_seconds = 0.0  # wall time spent in sample()

    @property
    def obs_size(self) -> int:
        return int(np.prod(self.envs.single_observation_space.shape))

    @property
    def action_size(self) -> int:
        return int(np.prod(self.envs.single_action_space.shape))

    def sample(self, policy: nn.Module, params: Sequence[Mapping[str, torch.Tensor]],
               tasks: Sequence[Any], *, seed: int) -> Batch:
        """One episode per simulation; task k's episodes run with params[k].

        `seed` fixes the env's reset noise and the action noise, so a batch is a pure
        function of (params, tasks, seed).
        """
        started = time.perf_counter()
        K, E = self.num_tasks, self.episodes_per_task
        if len(tasks) != K or len(params) != K:
            raise ValueError(f"Sampler.sample: need {K} tasks and {K} parameter sets, got "
                             f"{len(tasks)} and {len(params)}")
        self.envs.set_tasks([task for task in tasks for _ in range(E)])
        obs_NO, _ = self.envs.reset(seed=seed)
        generator = torch.Generator().manual_seed(seed)
        dtype = next(policy.parameters()).dtype
        alive_N = np.ones(K * E, dtype=bool)
        steps: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "logp", "term",
                                                  "trunc", "valid", "diverged")}
        for _ in range(self.horizon):
            obs = torch.as_tensor(obs_NO, dtype=dtype)
            with torch.no_grad():
                mean_NA, log_std_NA = _per_task_distribution(policy, params, obs, K, E)
                act_NA = sample_action(mean_NA, log_std_NA, generator)
                logp_N = log_prob(mean_NA, log_std_NA, act_NA)
            next_obs_NO, rew_N, term_N, trunc_N, info = self.envs.step(
                self.env_actions(act_NA).numpy())
            self.env_steps += int(alive_N.sum())
            for key, value in (("obs", obs), ("act", act_NA), ("rew", rew_N),
                               ("logp", logp_N), ("term", term_N), ("trunc", trunc_N),
                               ("valid", alive_N.copy()), ("diverged", info["diverged"])):
                steps[key].append(torch.as_tensor(value))
            alive_N &= ~(term_N | trunc_N)
            obs_NO = next_obs_NO
            if not alive_N.any():
                break
        stack = {k: torch.stack(v) for k, v in steps.items()}
        self.sample_seconds += time.perf_counter() - started
        return Batch(obs_TNO=stack["obs"], act_TNA=stack["act"],
                     rew_TN=stack["rew"].float(), logp_TN=stack["logp"],
                     terminated_TN=stack["term"], truncated_TN=stack["trunc"],
                     valid_TN=stack["valid"], diverged_TN=stack["diverged"],
                     task_N=torch.arange(K).repeat_interleave(E),
                     tasks=list(tasks), episodes_per_task=E)

    def env_actions(self, act_NA: torch.Tensor) -> torch.Tensor:
        """The policy's normalised actions mapped onto the env's action box."""
        return self.action_center + self.action_half_range * act_NA


def sampling_envs(family: Any, num_envs: int, *, horizon: int | None,
                  nthread: int | None) -> Any:
    """A sampler's batched env: `num_envs` simulations, resets left to the sampler."""
    options: dict[str, Any] = {"autoreset_mode": "disabled", "horizon": horizon}
    if nthread is not None:  # only the MuJoCo families take it
        options["nthread"] = nthread
    return family.make_vec([family.default_task] * num_envs, **options)


def check_count(owner: str, **counts: object) -> None:
    """Each count must be an integer >= 1 (not a bool); the error names it."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def box_action_scale(space: gymnasium.spaces.Box) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and half-range of a Box action space: a policy's a in [-1, 1] acts as
    centre + half_range * a."""
    return (torch.as_tensor((space.high + space.low) / 2),
            torch.as_tensor((space.high - space.low) / 2))


def _per_task_distribution(policy: nn.Module, params: Sequence[Mapping[str, torch.Tensor]],
                           obs_NO: torch.Tensor, K: int, E: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [N, A] and log-std [N, A], task k's rows from params[k]."""
    if all(p is params[0] for p in params):
        mean_NA, log_std_A = distribution(policy, params[0], obs_NO)
        return mean_NA, log_std_A.expand_as(mean_NA)
    stacked = {name: torch.stack([p[name] for p in params]) for name in params[0]}
    mean_KEA, log_std_KA = torch.func.vmap(
        lambda p, o: distribution(policy, p, o))(stacked, obs_NO.reshape(K, E, -1))
    mean_NA = mean_KEA.reshape(K * E, -1)
    return mean_NA, log_std_KA[:, None, :].expand(K, E, -1).reshape(K * E, -1)
