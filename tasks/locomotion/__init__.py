"""Locomotion families: a MuJoCo robot, a reward part and dynamics parts, composed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.family import TaskFamily, combine_splits
from tasks.locomotion.batched import LocomotionSim
from tasks.locomotion.reference import LocomotionEnv
from tasks.locomotion.robots import ANT, CHEETAH, Ant, HalfCheetah, Robot
from tasks.vector import BatchedEnv

__all__ = ["ANT", "CHEETAH", "Ant", "HalfCheetah", "Robot", "locomotion_family"]


def locomotion_family(*, name: str, robot: Robot, reward, dynamics: Sequence = (),
                      observation: Sequence = (), horizon: int, doc: str = "") -> TaskFamily:
    """Compose a family from a robot, one reward part and any number of dynamics parts
    and observation parts (`tasks.locomotion.observations`).

    The task's parameters are the parts' parameters, in order; its splits combine the
    parts' splits (see `tasks.family.combine_splits`).
    """
    dynamics, observation = tuple(dynamics), tuple(observation)
    parts = (reward, *dynamics, *observation)

    def make_vec(family: TaskFamily, tasks: Sequence[Any], *, seed: int | None = None,
                 horizon: int | None = None, autoreset_mode: str = "next-step",
                 nthread: int | None = None) -> BatchedEnv:
        sim = LocomotionSim(robot=robot, reward=reward, dynamics=dynamics,
                            observation=observation, num_envs=len(tasks), nthread=nthread)
        return BatchedEnv(family=family, simulator=sim, tasks=tasks,
                          horizon=family.horizon if horizon is None else horizon,
                          autoreset_mode=autoreset_mode, seed=seed)

    def make_env(family: TaskFamily, task: Any, **options: Any) -> LocomotionEnv:
        return LocomotionEnv(family=family, robot=robot, reward=reward, dynamics=dynamics,
                             observation=observation, task=task, **options)

    return TaskFamily(name=name, params=[p for part in parts for p in part.params],
                      splits=combine_splits([part.splits for part in parts]),
                      horizon=horizon, make_vec=make_vec, make_env=make_env, doc=doc)
