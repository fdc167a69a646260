"""What a dqn run offers the harness: greedy agents on its Q-networks that never adapt
(fixed agents, so their curves R(k) are flat), with or without the blocker.

- trained: member 0, greedy (with one member, plain DQN).
- ensemble: greedy on the members' mean Q-values.
- blocked: member 0, greedy among the choices the blocker lets through.
- blocked-ensemble: the members' mean Q-values, greedy among the choices let through.

The blocker refuses choices whose predicted probability of the catastrophe is above
`dqn.block_threshold`; where it refuses every choice, the least likely catastrophic
is taken (`fewshot.collect.agents.allowed_choices`).
"""

from __future__ import annotations

from fewshot.algos.dqn.config import DQNConfig
from fewshot.algos.dqn.dqn import DQN
from fewshot.collect.agents import QAgent
from fewshot.eval.learner import FixedAgentLearner


def trained(model: DQN, config: DQNConfig, *, name: str) -> FixedAgentLearner:
    """Member 0, greedy."""
    return FixedAgentLearner(name=name, agent=QAgent(model.q, member=0))


def ensemble(model: DQN, config: DQNConfig, *, name: str) -> FixedAgentLearner:
    """Greedy on the members' mean Q-values."""
    return FixedAgentLearner(name=name, agent=QAgent(model.q, member="mean"))


def blocked(model: DQN, config: DQNConfig, *, name: str) -> FixedAgentLearner:
    """Member 0, greedy among the choices the blocker lets through."""
    blocker = model.require_blocker(name)
    return FixedAgentLearner(name=name, agent=QAgent(
        model.q, member=0, blocker=blocker.network, threshold=config.block_threshold))


def blocked_ensemble(model: DQN, config: DQNConfig, *, name: str) -> FixedAgentLearner:
    """The members' mean Q-values, greedy among the choices the blocker lets through."""
    blocker = model.require_blocker(name)
    return FixedAgentLearner(name=name, agent=QAgent(
        model.q, member="mean", blocker=blocker.network, threshold=config.block_threshold))
