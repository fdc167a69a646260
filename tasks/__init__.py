"""Task families for few-shot and meta-reinforcement learning.

    import numpy as np, tasks
    family = tasks.get("cheetah-vel")
    train = family.sample(20, "train", np.random.default_rng(0))
    envs = family.make_vec(train, seed=0)      # one MuJoCo simulation per task, batched
    env = family.make_env(train[0])            # a plain gymnasium env of one task

Families are registered by name (`register` takes a family or a factory with typed
options: `tasks.get("guessing-game", train_instances=64)`). Every family is also
registered with gymnasium as fewshot/<name>-v0 (see `env_id`). This package never
imports `fewshot`.
"""

from __future__ import annotations

from tasks.catalog import BUILTIN
from tasks.family import SPLITS, TaskFamily, combine_splits, env_id, make_task_type
from tasks.locomotion import locomotion_family
from tasks.locomotion.robots import never_log_to_file
from tasks.regions import Param, Region, box, choice, product, shell, union
from tasks.registry import Option, get, names, options, register
from tasks.vector import BatchedEnv

__all__ = [
    "SPLITS", "BatchedEnv", "Option", "Param", "Region", "TaskFamily", "box", "choice",
    "combine_splits", "env_id", "get", "locomotion_family", "make_task_type", "names",
    "options", "product", "register", "shell", "union",
]

never_log_to_file()

for _factory in BUILTIN.values():
    register(_factory)
