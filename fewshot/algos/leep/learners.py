"""What the ensembles of PPO policies offer the harness. None adapts between episodes,
so their curves R(k) are flat.

- leep "trained": pi_max of the members, sampled at every step (LEEP's test-time policy).
- ensemble "trained": the mean of the members' action probabilities (Box: of their
  Gaussians' means), sampled.
- ensemble "member": each episode acts with one member, drawn when it starts.
"""

from __future__ import annotations

from fewshot.algos.leep.config import EnsembleConfig, LEEPConfig
from fewshot.algos.leep.leep import PolicyEnsemble
from fewshot.collect.agents import EnsembleAgent
from fewshot.eval.learner import FixedAgentLearner


def pi_max(model: PolicyEnsemble, config: LEEPConfig, *, name: str) -> FixedAgentLearner:
    """pi_max of the members, sampled at every step."""
    return FixedAgentLearner(name=name, agent=EnsembleAgent(model.ensemble(), mode="max"))


def mean(model: PolicyEnsemble, config: EnsembleConfig, *, name: str) -> FixedAgentLearner:
    """The members' mean policy, sampled at every step."""
    return FixedAgentLearner(name=name, agent=EnsembleAgent(model.ensemble(), mode="mean"))


def member(model: PolicyEnsemble, config: EnsembleConfig, *,
           name: str) -> FixedAgentLearner:
    """Each episode, one member drawn uniformly when it starts."""
    return FixedAgentLearner(name=name, agent=EnsembleAgent(model.ensemble(), mode="draw"))
