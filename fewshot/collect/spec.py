"""EnvSpec: the sizes a learner's networks are built from, read off a family's env."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    """Observation and action sizes of a family, and how many task parameters it has."""

    obs_size: int
    action_size: int   # action dimensions (Box) or number of choices (Discrete)
    discrete: bool
    task_size: int     # parameters of a task (what an oracle policy is told)


@functools.cache
def env_spec(family: Any) -> EnvSpec:
    """The family's EnvSpec (its reference env is built once per process)."""
    env = family.make_env()
    env.close()
    obs_space, action_space = env.observation_space, env.action_space
    discrete = isinstance(action_space, gymnasium.spaces.Discrete)
    if not discrete and not isinstance(action_space, gymnasium.spaces.Box):
        raise ValueError(f"family {family.name!r} has a {action_space} action space; "
                         "fewshot's learners take Box or Discrete actions")
    return EnvSpec(obs_size=int(np.prod(obs_space.shape)),
                   action_size=int(action_space.n) if discrete
                   else int(np.prod(action_space.shape)),
                   discrete=discrete, task_size=len(family.params))
