"""guessing-game: fully observed, yet generalizing to new observations needs memory.

Each episode shows one observation x, a noisy copy of one of C class prototypes, and the
agent guesses its class, one guess per step. A wrong guess costs 1 and the episode goes
on with the same x; a right guess ends it. A Markov policy that guesses wrong on an x it
has not seen repeats its mistake; a policy with memory can eliminate wrong guesses
within an episode, and remember the answer for the next episode of the same task.

A task is one observation: its class `label`, an `instance` id that fixes its noise, and
the noise scale. Train: a finite set of observations (option `train_instances`, 256 per
class by default, noise 1.5, so that even on them a first guess is often wrong).
Test-id: fresh instances, same noise. Test-ood: fresh instances with noise in
[2.5, 3.5), further from their prototypes. Guessing right is the outcome `success`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.regions import Param, box, choice, product
from tasks.resources import refuse_unless_fits
from tasks.simple import TaskEnv, check_choice, env_factories
from tasks.vector import SimStep

CLASSES = 4
FEATURES = 8
TRAIN_INSTANCES = 256
TRAIN_NOISE = 1.5
BYTES_PER_TRAIN_INSTANCE = 1600  # peak while building the family (4 boxes, their checks)
PROTOTYPES = np.random.default_rng(20261126).normal(size=(CLASSES, FEATURES))

OBSERVATION_SPACE = spaces.Box(-np.inf, np.inf, (FEATURES,), np.float64)
ACTION_SPACE = spaces.Discrete(CLASSES)


def observation(label: int, instance: float, noise: float) -> np.ndarray:
    """The task's x: its prototype plus `noise` times a fixed normal vector of `instance`."""
    seed = int(np.float64(instance).view(np.uint64))
    return PROTOTYPES[int(label)] + noise * np.random.default_rng(seed).normal(size=FEATURES)


class GuessingGameSim:
    """N games stepped with array operations."""

    single_observation_space = OBSERVATION_SPACE
    single_action_space = ACTION_SPACE

    def __init__(self, num_envs: int) -> None:
        self.x_NO = np.zeros((num_envs, FEATURES))
        self.label_N = np.zeros(num_envs, dtype=np.int64)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self.label_N = task["label"].astype(np.int64)
        self.x_NO = np.stack([observation(*values) for values in
                              zip(task["label"], task["instance"], task["noise"], strict=True)])

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        return self.x_NO[ids].copy()

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        right_N = action_N == self.label_N
        reward_N = np.where(right_N, 0.0, -1.0)
        return SimStep(obs_NO=self.x_NO.copy(), reward_N=reward_N, terms={"guess": reward_N},
                       terminated_N=right_N, diverged_N=np.zeros(len(action_N), dtype=bool),
                       outcomes={"success": right_N})


class GuessingGameEnv(TaskEnv):
    """The single reference env, written with scalars."""

    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE

    def first_observation(self) -> np.ndarray:
        self._x = observation(self.task.label, self.task.instance, self.task.noise)
        return self._x.copy()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        right = check_choice(action, CLASSES, "class") == self.task.label
        reward = 0.0 if right else -1.0
        info = {"diverged": False, "reward_guess": reward, "outcome_success": right}
        return self._x.copy(), reward, right, False, info


make_vec, make_env = env_factories(GuessingGameSim, GuessingGameEnv)


def guessing_game(*, train_instances: int = TRAIN_INSTANCES) -> TaskFamily:
    """Options: train_instances, the number of training observations per class."""
    if isinstance(train_instances, bool) or not isinstance(train_instances, int) \
            or train_instances < 1:
        raise ValueError(f"family 'guessing-game': option train_instances must be an "
                         f"integer >= 1, got {train_instances!r}")
    refuse_unless_fits(f"family 'guessing-game' with option train_instances="
                       f"{train_instances}", train_instances * BYTES_PER_TRAIN_INSTANCE)
    labels = choice("label", range(CLASSES))
    instances = choice("instance", [i / train_instances for i in range(train_instances)])
    return TaskFamily(
        name="guessing-game",
        params=[Param("label", values=tuple(range(CLASSES)), doc="the observation's class"),
                Param("instance", 0.0, 1.0, doc="fixes the observation's noise"),
                Param("noise", 0.0, 4.0, doc="distance from the class prototype")],
        splits={"train": product([labels, instances,
                                  box(noise=(TRAIN_NOISE, TRAIN_NOISE))]),
                "test-id": product([labels, box(instance=(0.0, 1.0),
                                                noise=(TRAIN_NOISE, TRAIN_NOISE))]),
                "test-ood": product([labels, box(instance=(0.0, 1.0), noise=(2.5, 3.5))])},
        horizon=CLASSES + 2, make_vec=make_vec, make_env=make_env, outcomes=("success",),
        default_task={"label": 0, "instance": 0.0, "noise": TRAIN_NOISE},
        doc=f"guess the class of x ({CLASSES} classes); train: {train_instances} x per "
            "class; OOD: noisier x")
