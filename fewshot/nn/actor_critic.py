"""Actor-critics trained with PPO over trials: recurrent (RL²) and Markov (baselines).

Both take the same per-step inputs from the trial sampler: the observation, the previous
action, the previous reward, a flag that is 1 on the first step of every episode, and the
task's parameters; each uses what it is allowed to see:

- `RecurrentActorCritic` (RL²): a GRU over [obs, previous action (one-hot when
  discrete), previous reward, new-episode flag]. Its memory is its only way to adapt. The
  hidden state ([N, H]) goes in and out explicitly; it is zero at the start of a trial
  and never reset inside one.
- `MarkovActorCritic` (multi-task PPO): MLPs (tanh or ReLU) of the observation only. With
  `sees_task=True` (the oracle) the task's parameters are appended to it.

Heads: action logits (discrete) or a Gaussian mean with a state-independent log-std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from fewshot.nn.gru import gru_sequence
from fewshot.nn.policy import log_prob, mlp, sample_action

LOG_2PI_E = math.log(2.0 * math.pi * math.e)


class ActorCritic(nn.Module):
    """The action distribution shared by both architectures."""

    discrete: bool
    log_std: nn.Parameter | None

    def _init_head(self, *, action_size: int, discrete: bool, init_log_std: float) -> None:
        self.action_size, self.discrete = action_size, discrete
        self.log_std = None if discrete else nn.Parameter(
            torch.full((action_size,), float(init_log_std)))

    def sample(self, head_NA: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions [N] (choices) or [N, A]."""
        if self.discrete:
            return torch.multinomial(torch.softmax(head_NA, -1), 1, generator=generator)[:, 0]
        return sample_action(head_NA, self.log_std.expand_as(head_NA), generator)

    def most_likely(self, head_NA: torch.Tensor) -> torch.Tensor:
        """The distribution's mode: the most likely choice [N], or the Gaussian's mean."""
        return head_NA.argmax(-1) if self.discrete else head_NA

    def log_prob(self, head: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(act), one per step: head [..., A], act [...] or [..., A]."""
        if self.discrete:
            return torch.log_softmax(head, -1).gather(-1, act.long()[..., None])[..., 0]
        return log_prob(head, self.log_std.expand_as(head), act)

    def input_weights(self) -> list[torch.Tensor]:
        """The weights that read the inputs (an L1 penalty on them is an information
        bottleneck: inputs the policy can do without get zero weight)."""
        raise NotImplementedError

    def entropy(self, head: torch.Tensor) -> torch.Tensor:
        """Entropy of the action distribution, one per step."""
        if self.discrete:
            logp = torch.log_softmax(head, -1)
            return -(logp.exp() * logp).sum(-1)
        return (self.log_std + 0.5 * LOG_2PI_E).sum().expand(head.shape[:-1])


def _check_sizes(name: str, **sizes: int) -> None:
    if min(sizes.values()) < 1:
        raise ValueError(f"{name}: sizes must be >= 1, got "
                         + ", ".join(f"{k}={v}" for k, v in sizes.items()))


class RecurrentActorCritic(ActorCritic):
    """RL²'s policy: a GRU over [obs, previous action, previous reward, new-episode flag]."""

    memory = True

    def __init__(self, *, obs_size: int, action_size: int, discrete: bool,
                 hidden_size: int = 128, init_log_std: float = 0.0) -> None:
        super().__init__()
        _check_sizes("RecurrentActorCritic", obs_size=obs_size, action_size=action_size,
                     hidden_size=hidden_size)
        self._init_head(action_size=action_size, discrete=discrete, init_log_std=init_log_std)
        self.hidden_size = hidden_size
        self.input_size = obs_size + action_size + 2
        self.gru = nn.GRU(self.input_size, hidden_size)
        self.policy_head = nn.Linear(hidden_size, action_size)
        self.value_head = nn.Linear(hidden_size, 1)

    def initial_state(self, n: int) -> torch.Tensor:
        """The hidden state at the start of a trial: zeros [N, H]."""
        return torch.zeros(n, self.hidden_size, dtype=self.policy_head.weight.dtype)

    def inputs(self, obs_NO: torch.Tensor, prev_act: torch.Tensor, prev_rew_N: torch.Tensor,
               new_episode_N: torch.Tensor, task_NP: torch.Tensor) -> torch.Tensor:
        """One step's input [N, I]; prev_act is [N] choices or [N, A] actions. The task's
        parameters are not used: RL² must infer the task."""
        dtype = self.policy_head.weight.dtype
        if self.discrete:
            prev_act = nn.functional.one_hot(prev_act.long(), self.action_size)
        return torch.cat([obs_NO.to(dtype), prev_act.to(dtype), prev_rew_N[:, None].to(dtype),
                          new_episode_N[:, None].to(dtype)], dim=1)

    def forward(self, x_TNI: torch.Tensor, h_NH: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run T steps: action head [T, N, A], value [T, N] and the final hidden [N, H].

        With gradients on (PPO's replay of whole trials), the GRU runs through
        `gru_sequence`, whose hand-written backward is several times cheaper than
        autograd's over hundreds of steps; without (sampling), through `nn.GRU` itself.
        """
        if torch.is_grad_enabled():
            out_TNH, h_NH = gru_sequence(self.gru, x_TNI, h_NH)
        else:
            out_TNH, h_1NH = self.gru(x_TNI, h_NH[None])
            h_NH = h_1NH[0]
        return self.policy_head(out_TNH), self.value_head(out_TNH)[..., 0], h_NH

    def input_weights(self) -> list[torch.Tensor]:
        return [self.gru.weight_ih_l0]


class MarkovActorCritic(ActorCritic):
    """Multi-task PPO's policy: actor and critic MLPs of the observation (and, for the
    oracle, of the task's parameters). No memory: the 'hidden state' is empty."""

    memory = False

    def __init__(self, *, obs_size: int, action_size: int, discrete: bool,
                 hidden_sizes: Sequence[int] = (64, 64), task_size: int = 0,
                 init_log_std: float = 0.0, activation: str = "tanh") -> None:
        super().__init__()
        _check_sizes("MarkovActorCritic", obs_size=obs_size, action_size=action_size,
                     hidden=min(hidden_sizes, default=0))
        self._init_head(action_size=action_size, discrete=discrete, init_log_std=init_log_std)
        self.sees_task = task_size > 0
        self.input_size = obs_size + task_size
        self.actor = mlp([self.input_size, *hidden_sizes, action_size], activation)
        self.critic = mlp([self.input_size, *hidden_sizes, 1], activation)

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 0, dtype=self.actor[0].weight.dtype)

    def inputs(self, obs_NO: torch.Tensor, prev_act: torch.Tensor, prev_rew_N: torch.Tensor,
               new_episode_N: torch.Tensor, task_NP: torch.Tensor) -> torch.Tensor:
        """The observation, with the task's parameters appended for the oracle."""
        dtype = self.actor[0].weight.dtype
        parts = [obs_NO.to(dtype)] + ([task_NP.to(dtype)] if self.sees_task else [])
        return torch.cat(parts, dim=1)

    def forward(self, x_TNI: torch.Tensor, h_N0: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.actor(x_TNI), self.critic(x_TNI)[..., 0], h_N0

    def input_weights(self) -> list[torch.Tensor]:
        return [self.actor[0].weight, self.critic[0].weight]
