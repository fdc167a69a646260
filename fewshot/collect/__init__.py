"""Collection: the one env loop (`Collector`), the agents it runs, the `Batch` it returns,
and a replay buffer for off-policy learners."""

from fewshot.collect.batch import Batch
from fewshot.collect.collector import Action, Agent, Collector, Trials
from fewshot.collect.spec import EnvSpec, env_spec

__all__ = ["Action", "Agent", "Batch", "Collector", "EnvSpec", "Trials", "env_spec"]
