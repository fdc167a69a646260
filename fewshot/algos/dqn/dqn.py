"""DQN over an ensemble of Q-networks (learner stage of the data flow): the model, its TD
step and the exploration schedule.

Letters: M members (dqn.ensemble_size), B transitions, A choices, O observation size.

- Targets are double-Q (van Hasselt et al. 2016): member m's online network picks the
  next choice and its target network values it,
  y_mb = r_b + gamma (1 - terminated_b) Qtarget_m(s'_b, argmax_a Q_m(s'_b, a)).
- The loss is the Huber loss (delta 1) of Q_m(s_b, a_b) - y_mb, averaged over the
  transitions member m trains on: those its bootstrap mask keeps, and whose target is
  known (`complete`: the episode terminated there, or its next observation was recorded).
- The target networks are updated hard: copied whole every `target_update_every`
  gradient steps (rather than polyak-averaged: one setting, and nothing but the copy to
  save for an exact resume).
- Members are independent: member m's loss reaches only its own weights, and each
  member's gradient is clipped by its own norm, so K members trained together are K
  DQNs on shared minibatches with their own masks, run in one vmapped pass (Ensemble).
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional

from fewshot.algos.dqn.blocker import Blocker
from fewshot.algos.dqn.config import DQNConfig
from fewshot.collect import EnvSpec
from fewshot.nn.ensemble import Ensemble
from fewshot.nn.policy import mlp


def linear_epsilon(env_steps: int, *, start: float, end: float, decay_steps: int) -> float:
    """Epsilon after `env_steps` env-steps: from `start`, linearly to `end` at
    `decay_steps`, then `end`."""
    return end + (start - end) * max(0.0, 1.0 - env_steps / decay_steps)


def double_q_targets(q: Ensemble, target: Ensemble, next_obs_BO: torch.Tensor,
                     rew_B: torch.Tensor, terminated_B: torch.Tensor,
                     gamma: float) -> torch.Tensor:
    """Each member's double-Q target of each transition, y [M, B] (no gradient)."""
    with torch.no_grad():
        best_MB1 = q(next_obs_BO).argmax(-1, keepdim=True)
        next_MB = target(next_obs_BO).gather(-1, best_MB1)[..., 0]
        return rew_B + gamma * (~terminated_B) * next_MB


def td_loss(q: Ensemble, target: Ensemble, sample: dict[str, torch.Tensor],
            gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' summed Huber TD losses on a sample of transitions (fields obs, act,
    rew, next_obs, terminated, complete [B], mask [B, M]), and Q(s, a) [M, B]."""
    y_MB = double_q_targets(q, target, sample["next_obs"], sample["rew"],
                            sample["terminated"], gamma)
    q_MBA = q(sample["obs"])
    act_MB1 = sample["act"][None, :, None].expand(q.members, -1, 1)
    q_MB = q_MBA.gather(-1, act_MB1)[..., 0]
    huber_MB = functional.huber_loss(q_MB, y_MB, reduction="none", delta=1.0)
    weight_MB = sample["mask"].T.float() * sample["complete"].float()
    loss_M = (weight_MB * huber_MB).sum(1) / weight_MB.sum(1).clamp(min=1.0)
    return loss_M.sum(), q_MB.detach()


def clip_members(ensemble: Ensemble, max_norm: float) -> torch.Tensor:
    """Rescale each member's gradient to a norm of at most `max_norm` (as
    torch.nn.utils.clip_grad_norm_ would for that member alone); returns the norms, [M]."""
    M = ensemble.members
    grads = [p.grad for p in ensemble.stacked if p.grad is not None]
    norm_M = torch.stack([g.reshape(M, -1).square().sum(1) for g in grads]).sum(0).sqrt()
    scale_M = (max_norm / (norm_M + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale_M.reshape(M, *[1] * (g.dim() - 1)))
    return norm_M


class DQN:
    """The model: K Q-networks and their target networks (two Ensembles), their optimizer,
    and the blocker when the family flags `catastrophe_outcome` (else None)."""

    def __init__(self, config: DQNConfig, spec: EnvSpec) -> None:
        self.config, self.spec = config, spec
        sizes = [spec.obs_size, *config.hidden_sizes, spec.action_size]
        self.q = Ensemble(lambda: mlp(sizes, config.activation), config.ensemble_size)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.blocker = (Blocker(sizes=sizes, activation=config.activation, lr=config.lr)
                        if config.catastrophe_outcome in spec.outcomes else None)
        self.gradient_steps = 0

    def td_step(self, sample: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step of every member; the targets are copied on schedule."""
        loss, q_MB = td_loss(self.q, self.target, sample, self.config.gamma)
        self.optimizer.zero_grad()
        loss.backward()
        clip_members(self.q, self.config.max_grad_norm)
        self.optimizer.step()
        self.gradient_steps += 1
        if self.gradient_steps % self.config.target_update_every == 0:
            self.target.load_state_dict(self.q.state_dict())
        return {"td_loss": float(loss.detach()) / self.q.members, "q_mean": float(q_MB.mean())}

    def require_blocker(self, learner: str) -> Blocker:
        """The blocker, or a ValueError saying why this run has none."""
        if self.blocker is None:
            raise ValueError(f"learner {learner} needs the blocker, which is off in this run: "
                             f"dqn.catastrophe_outcome is {self.config.catastrophe_outcome!r}, "
                             f"and the family flags the outcomes {list(self.spec.outcomes)}")
        return self.blocker

    def state_dict(self) -> dict:
        state = {"q": self.q.state_dict(), "target": self.target.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "gradient_steps": self.gradient_steps}
        if self.blocker is not None:
            state["blocker"] = self.blocker.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gradient_steps = int(state["gradient_steps"])
        if self.blocker is not None:
            self.blocker.load_state_dict(state["blocker"])
