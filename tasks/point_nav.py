"""point-nav: a 2D point walks to a goal. The MAML paper's navigation benchmark, in numpy.

Observation: the point's position (2). Action: a displacement, clipped to [-0.1, 0.1]^2.
Reward: minus the distance to the goal after the move. The point starts at the origin;
an episode ends when it is within 0.01 of the goal (as in the MAML code), or after
100 steps; reaching the goal is the episode outcome `success`. Train and test-id goals
are uniform in [-0.5, 0.5)^2; test-ood goals are uniform in [-1, 1)^2 outside the
training square. The scripted oracle steps straight to the goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.regions import Param, box, shell
from tasks.simple import TaskEnv, env_factories
from tasks.vector import SimStep

MAX_STEP = 0.1
GOAL_RADIUS = 0.01

OBSERVATION_SPACE = spaces.Box(-np.inf, np.inf, (2,), np.float64)
ACTION_SPACE = spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float32)


class PointNavSim:
    """N points stepped with array operations."""

    single_observation_space = OBSERVATION_SPACE
    single_action_space = ACTION_SPACE

    def __init__(self, num_envs: int) -> None:
        self.pos_N2 = np.zeros((num_envs, 2))
        self.goal_N2 = np.zeros((num_envs, 2))

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self.goal_N2 = np.stack([task["goal_x"], task["goal_y"]], axis=1)

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.pos_N2[ids] = 0.0
        return self.pos_N2[ids].copy()

    def step(self, action_NA: np.ndarray, active_N: np.ndarray) -> SimStep:
        move = np.clip(action_NA, -MAX_STEP, MAX_STEP)
        self.pos_N2 = np.where(active_N[:, None], self.pos_N2 + move, self.pos_N2)
        distance_N = np.linalg.norm(self.pos_N2 - self.goal_N2, axis=1)
        reached_N = distance_N < GOAL_RADIUS
        return SimStep(obs_NO=self.pos_N2.copy(), reward_N=-distance_N,
                       terms={"distance": -distance_N}, terminated_N=reached_N,
                       diverged_N=np.zeros(len(distance_N), dtype=bool),
                       outcomes={"success": reached_N})


class PointNavEnv(TaskEnv):
    """The single reference env, written with scalars, independently of PointNavSim."""

    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE

    def first_observation(self) -> np.ndarray:
        self._x = self._y = 0.0
        return np.array([self._x, self._y])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        action = np.asarray(action)
        if action.dtype.kind != "f":
            raise ValueError(f"action must be floating point, got dtype {action.dtype}")
        if action.shape != (2,):
            raise ValueError(f"action must have shape (2,), got shape {action.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action}")
        dx, dy = (min(max(float(a), -MAX_STEP), MAX_STEP) for a in action)
        self._x += dx
        self._y += dy
        distance = ((self._x - self.task.goal_x) ** 2 + (self._y - self.task.goal_y) ** 2) ** 0.5
        obs = np.array([self._x, self._y])
        reached = distance < GOAL_RADIUS
        info = {"diverged": False, "reward_distance": -distance, "outcome_success": reached}
        return obs, -distance, reached, False, info


make_vec, make_env = env_factories(PointNavSim, PointNavEnv)


def straight_to_goal(obs_N2: np.ndarray, task: dict[str, np.ndarray]) -> np.ndarray:
    """The oracle: the largest step straight towards the goal, or the exact remainder."""
    goal_N2 = np.stack([task["goal_x"], task["goal_y"]], axis=1)
    return np.clip(goal_N2 - obs_N2, -MAX_STEP, MAX_STEP)


def point_nav() -> TaskFamily:
    train = {"goal_x": (-0.5, 0.5), "goal_y": (-0.5, 0.5)}
    return TaskFamily(
        name="point-nav",
        params=[Param("goal_x", -1.0, 1.0, doc="goal x"),
                Param("goal_y", -1.0, 1.0, doc="goal y")],
        splits={"train": box(**train),
                "test-ood": shell({"goal_x": (-1.0, 1.0), "goal_y": (-1.0, 1.0)}, train)},
        horizon=100, make_vec=make_vec, make_env=make_env, outcomes=("success",),
        oracle=straight_to_goal,
        default_task={"goal_x": 0.25, "goal_y": 0.25},  # not the start, where it would end
        doc="2D point to a goal; OOD goals outside the training square")
