"""The blocker: a classifier of (observation, choice) -> P(catastrophe at the next step),
learnt during DQN's training from the agent's own transitions.

It is one MLP from observations [N, O] to A logits, one per choice (as a Q-network is).
Its label is whether the env flagged the catastrophe outcome at the step the choice was
taken. Catastrophes are rare, so each minibatch is drawn balanced from the replay buffer:
the transitions with a catastrophe and those without are drawn equally often
(`balanced_weights`), and the loss is the plain binary cross-entropy. The classifier so
learns the probability under balanced classes: P > 0.5 means that a step looks more like
the catastrophes seen than like the safe steps, which errs towards blocking.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

from fewshot.nn.policy import mlp


def balanced_weights(label_B: torch.Tensor) -> torch.Tensor:
    """Sampling weights [B] that give each class of the bool labels half the draws (all
    the draws to the one class present, if only one is)."""
    positive_B = label_B.double()
    count_pos, count_neg = positive_B.sum(), (1 - positive_B).sum()
    if count_pos == 0 or count_neg == 0:
        return torch.ones_like(positive_B)
    return positive_B / count_pos + (1 - positive_B) / count_neg


class Blocker:
    """The classifier and its optimizer."""

    def __init__(self, *, sizes: Sequence[int], activation: str, lr: float) -> None:
        self.network = mlp(sizes, activation)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=lr)

    def probability(self, obs_NO: torch.Tensor) -> torch.Tensor:
        """P(catastrophe at the next step | observation, choice), [N, A]."""
        return torch.sigmoid(self.network(obs_NO))

    def update(self, obs_BO: torch.Tensor, act_B: torch.Tensor,
               label_B: torch.Tensor) -> float:
        """One gradient step of the cross-entropy of the taken choices' logits; the loss."""
        logit_B = self.network(obs_BO).gather(-1, act_B[:, None])[:, 0]
        loss = functional.binary_cross_entropy_with_logits(logit_B, label_B.float())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
