"""What a leep run offers the harness: the ensemble acting with pi_max, sampled (LEEP's
test-time policy). It does not adapt between episodes, so its curve R(k) is flat."""

from __future__ import annotations

from fewshot.algos.leep.config import LEEPConfig
from fewshot.algos.leep.leep import LEEP
from fewshot.collect.agents import EnsembleAgent
from fewshot.eval.learner import FixedAgentLearner


def trained(model: LEEP, config: LEEPConfig, *, name: str) -> FixedAgentLearner:
    """pi_max of the members, sampled at every step."""
    return FixedAgentLearner(name=name, agent=EnsembleAgent(model.ensemble(), mode="max"))
