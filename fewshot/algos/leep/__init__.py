"""LEEP (Ghosh et al. 2021): a bootstrapped ensemble of PPO policies, each pulled towards
their combined policy pi_max, which acts at test time. Registered as "leep"."""

from __future__ import annotations

from fewshot import registry
from fewshot.algos.leep import learners
from fewshot.algos.leep.config import LEEPConfig
from fewshot.algos.leep.leep import LEEP
from fewshot.algos.leep.trainer import LEEPTrainer

ALGORITHM = registry.register(registry.Algorithm(
    name="leep", config=LEEPConfig, build=LEEP, trainer=LEEPTrainer,
    learners={"trained": learners.trained},
    doc="LEEP: bootstrapped PPO policies pulled towards their combined policy pi_max"))
