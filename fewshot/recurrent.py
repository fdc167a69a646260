"""RL²'s policy: a recurrent actor-critic whose memory is its only way to adapt.

Input at each step: the observation, the previous action (one-hot for discrete actions),
the previous reward and a flag that is 1 on the first step of every episode. The hidden
state goes in and out explicitly ([N, H]); it is zero at the start of a trial and is
never reset inside one. Heads: action logits (discrete) or a Gaussian mean with a
state-independent log-std (continuous), and a value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fewshot.policy import log_prob, sample_action

LOG_2PI_E = math.log(2.0 * math.pi * math.e)


class RecurrentActorCritic(nn.Module):
    """A GRU over [obs, previous action, previous reward, new-episode flag].

    Args:
        obs_size: observation size O.
        action_size: number of choices (discrete) or action dimensions A (continuous).
        discrete: categorical actions if True, Gaussian otherwise.
        hidden_size: GRU width H.
        init_log_std: the Gaussian's initial log-std (continuous only).
    """

    def __init__(self, *, obs_size: int, action_size: int, discrete: bool,
                 hidden_size: int = 128, init_log_std: float = 0.0) -> None:
        super().__init__()
        if min(obs_size, action_size, hidden_size) < 1:
            raise ValueError(f"RecurrentActorCritic: sizes must be >= 1, got obs_size="
                             f"{obs_size}, action_size={action_size}, hidden_size={hidden_size}")
        self.obs_size, self.action_size, self.discrete = obs_size, action_size, discrete
        self.hidden_size = hidden_size
        self.input_size = obs_size + action_size + 2
        self.gru = nn.GRU(self.input_size, hidden_size)
        self.policy_head = nn.Linear(hidden_size, action_size)
        self.value_head = nn.Linear(hidden_size, 1)
        self.log_std = None if discrete else nn.Parameter(
            torch.full((action_size,), float(init_log_std)))

    def initial_state(self, n: int) -> torch.Tensor:
        """The hidden state at the start of a trial: zeros [N, H]."""
        return torch.zeros(n, self.hidden_size, dtype=self.policy_head.weight.dtype)

    def inputs(self, obs_NO: torch.Tensor, prev_act: torch.Tensor, prev_rew_N: torch.Tensor,
               new_episode_N: torch.Tensor) -> torch.Tensor:
        """One step's input [N, I]; prev_act is [N] choices or [N, A] actions."""
        dtype = self.policy_head.weight.dtype
        if self.discrete:
            prev_act = nn.functional.one_hot(prev_act.long(), self.action_size)
        return torch.cat([obs_NO.to(dtype), prev_act.to(dtype), prev_rew_N[:, None].to(dtype),
                          new_episode_N[:, None].to(dtype)], dim=1)

    def forward(self, x_TNI: torch.Tensor, h_NH: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run T steps: action head [T, N, A], value [T, N] and the final hidden [N, H]."""
        out_TNH, h_1NH = self.gru(x_TNI, h_NH[None])
        return self.policy_head(out_TNH), self.value_head(out_TNH)[..., 0], h_1NH[0]

    # The action distribution ----------------------------------------------------------

    def sample(self, head_NA: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions [N] (choices) or [N, A]."""
        if self.discrete:
            return torch.multinomial(torch.softmax(head_NA, -1), 1, generator=generator)[:, 0]
        return sample_action(head_NA, self.log_std.expand_as(head_NA), generator)

    def log_prob(self, head: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(act), one per step: head [..., A], act [...] or [..., A]."""
        if self.discrete:
            return torch.log_softmax(head, -1).gather(-1, act.long()[..., None])[..., 0]
        return log_prob(head, self.log_std.expand_as(head), act)

    def entropy(self, head: torch.Tensor) -> torch.Tensor:
        """Entropy of the action distribution, one per step."""
        if self.discrete:
            logp = torch.log_softmax(head, -1)
            return -(logp.exp() * logp).sum(-1)
        return (self.log_std + 0.5 * LOG_2PI_E).sum().expand(head.shape[:-1])
