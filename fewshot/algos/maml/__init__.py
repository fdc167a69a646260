"""MAML (Finn et al., 2017): adapt by policy-gradient steps, meta-trained through the
adaptation with TRPO or PPO. Registered as the algorithm "maml"."""

from __future__ import annotations

from fewshot import registry
from fewshot.algos.maml import learners
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import MAML
from fewshot.algos.maml.trainer import MAMLTrainer
from fewshot.collect import EnvSpec
from fewshot.nn.policy import GaussianMLP


def build(config: MAMLConfig, spec: EnvSpec) -> MAML:
    if spec.discrete:
        raise ValueError("maml's Gaussian policy needs a Box action space; this family's "
                         "actions are discrete")
    policy = GaussianMLP(obs_size=spec.obs_size, action_size=spec.action_size,
                         hidden_sizes=config.hidden_sizes, init_log_std=config.init_log_std,
                         activation=config.activation)
    return MAML(policy=policy, config=config)


ALGORITHM = registry.register(registry.Algorithm(
    name="maml", config=MAMLConfig, build=build, trainer=MAMLTrainer,
    learners={"trained": learners.trained, "non-adaptive": learners.non_adaptive},
    doc="MAML: inner policy-gradient steps, meta-trained with TRPO or PPO"))
