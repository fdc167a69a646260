"""EnvSpec: the sizes a learner's networks are built from, read off a family's env."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
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
    outcomes: tuple[str, ...] = ()
    """The episode outcomes the family flags (what a classifier of outcomes can learn)."""
    action_center: np.ndarray | None = field(default=None, compare=False)
    """Box actions: the centre of the env's action box (None for Discrete)."""
    action_half_range: np.ndarray | None = field(default=None, compare=False)
    """Box actions: half the width of the box; an agent's a in [-1, 1] acts as
    centre + half_range * a."""


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
    if discrete:
        return EnvSpec(obs_size=int(np.prod(obs_space.shape)),
                       action_size=int(action_space.n), discrete=True,
                       task_size=len(family.params), outcomes=tuple(family.outcomes))
    return EnvSpec(obs_size=int(np.prod(obs_space.shape)),
                   action_size=int(np.prod(action_space.shape)), discrete=False,
                   task_size=len(family.params), outcomes=tuple(family.outcomes),
                   action_center=(action_space.high + action_space.low) / 2,
                   action_half_range=(action_space.high - action_space.low) / 2)
