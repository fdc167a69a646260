"""Ensembles of PPO policies, registered as two algorithms: "leep" (Ghosh et al. 2021: a
bootstrapped ensemble, each member pulled towards their combined policy pi_max, which
acts at test time) and "ensemble" (independent PPO policies on all the training tasks,
acting by their mean policy or by one member per episode)."""

from __future__ import annotations

from fewshot import registry
from fewshot.algos.leep import learners
from fewshot.algos.leep.config import EnsembleConfig, LEEPConfig
from fewshot.algos.leep.leep import PolicyEnsemble
from fewshot.algos.leep.trainer import EnsembleTrainer

LEEP = registry.register(registry.Algorithm(
    name="leep", config=LEEPConfig, build=PolicyEnsemble, trainer=EnsembleTrainer,
    learners={"trained": learners.pi_max},
    doc="LEEP: bootstrapped PPO policies pulled towards their combined policy pi_max"))
ENSEMBLE = registry.register(registry.Algorithm(
    name="ensemble", config=EnsembleConfig, build=PolicyEnsemble, trainer=EnsembleTrainer,
    learners={"trained": learners.mean, "member": learners.member},
    doc="independent PPO policies on all the training tasks: their mean, or one member"))
