"""DQN (Mnih et al. 2015) with double-Q targets, over an ensemble of Q-networks trained
together with their own bootstrap masks (Osband et al. 2016), and a blocker: a
classifier of catastrophic choices learnt alongside (Saunders et al. 2018). Registered
as the algorithm "dqn"."""

from __future__ import annotations

from fewshot import registry
from fewshot.algos.dqn import learners
from fewshot.algos.dqn.config import DQNConfig
from fewshot.algos.dqn.dqn import DQN
from fewshot.algos.dqn.trainer import DQNTrainer

ALGORITHM = registry.register(registry.Algorithm(
    name="dqn", config=DQNConfig, build=DQN, trainer=DQNTrainer,
    learners={"trained": learners.trained, "ensemble": learners.ensemble,
              "blocked": learners.blocked, "blocked-ensemble": learners.blocked_ensemble},
    doc="DQN over an ensemble of bootstrapped Q-networks, with a blocker of catastrophes"))
