"""Task families for few-shot and meta-reinforcement learning.

    import numpy as np, tasks
    family = tasks.get("cheetah-vel")
    train = family.sample(20, "train", np.random.default_rng(0))
    envs = family.make_vec(train, seed=0)      # one MuJoCo simulation per task, batched
    env = family.make_env(train[0])            # a plain gymnasium env of one task

Every family is also registered with gymnasium as fewshot/<name>-v0 (see `env_id`).
This package never imports `fewshot`.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium

from tasks.catalog import BUILTIN
from tasks.family import SPLITS, TaskFamily, combine_splits, env_id, make_task_type
from tasks.locomotion import locomotion_family
from tasks.locomotion.robots import never_log_to_file
from tasks.regions import Param, Region, box, choice, product, shell, union
from tasks.vector import BatchedEnv

__all__ = [
    "SPLITS", "BatchedEnv", "Param", "Region", "TaskFamily", "box", "choice",
    "combine_splits", "env_id", "get", "locomotion_family", "make_task_type", "names", "product",
    "register", "shell", "union",
]

never_log_to_file()

_families: dict[str, TaskFamily] = {}


def names() -> list[str]:
    """The registered family names."""
    return list(_families)


def get(name: str) -> TaskFamily:
    """The family registered under `name`."""
    if name not in _families:
        raise ValueError(f"unknown task family {name!r}; known families: {names()}")
    return _families[name]


def register(family: TaskFamily) -> None:
    """Add a family to the registry and to gymnasium (as `env_id(family.name)`)."""
    if not isinstance(family, TaskFamily):
        raise ValueError(f"register takes a TaskFamily, got {type(family).__name__}")
    if family.name in _families:
        raise ValueError(f"a task family named {family.name!r} is already registered")
    _families[family.name] = family
    # entry points name the family rather than hold it: gymnasium deep-copies specs
    gymnasium.register(
        id=family.env_id,
        entry_point=functools.partial(_make_env, family.name),
        vector_entry_point=functools.partial(_make_vec, family.name),
        max_episode_steps=family.horizon,
    )


def _make_env(name: str, **kwargs: Any) -> gymnasium.Env:
    return get(name)._build_env(**kwargs)


def _make_vec(name: str, **kwargs: Any) -> BatchedEnv:
    return get(name)._build_vec(**kwargs)


for _factory in BUILTIN.values():
    register(_factory())
