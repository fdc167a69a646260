"""A plugin family with a catastrophe: cliff, a two-row corridor along a cliff edge.

The agent starts at one end of the bottom row; the goal is the column at the other end;
the bottom cells between them are the cliff. The safe path goes up, then along the top
row.

| action | move |        | observation (3)                          |
|--------|------|        |------------------------------------------|
| 0      | up   |        | column / (length - 1), in [0, 1]         |
| 1      | down |        | row: 0 top, 1 bottom                     |
| 2      | left |        | direction of the goal: +1 right, -1 left |
| 3      | right|        |                                          |

A move off the grid stays put. Reward: +0.1 per column moved towards the goal (-0.1 away
from it), +1 on reaching the goal (outcome `solved`), -1 on stepping into the cliff
(outcome `catastrophe`); both end the episode.
A task is the goal's `side` (1: right, 0: left) and the corridor's `length`: 4 to 6 for
training, 7 or 8 out of distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

import tasks
from tasks.simple import TaskEnv, check_choice, env_factories
from tasks.vector import SimStep

OBSERVATION = spaces.Box(-1.0, 1.0, (3,), np.float64)
ACTION = spaces.Discrete(4)
MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])  # (column, row) per action
HORIZON = 20
PROGRESS = 0.1  # reward per column moved towards the goal


def start_column(length, side):
    """Where the agent starts on the bottom row: the end opposite the goal."""
    return np.where(side == 1, 0, length - 1)


def outcome(column, row, length, side):
    """(catastrophe, solved) of standing at (column, row): shared by both envs."""
    start = start_column(length, side)
    solved = column == length - 1 - start
    catastrophe = (row == 1) & ~solved & (column != start)
    return catastrophe, solved


def observe(column, row, length, side) -> np.ndarray:
    return np.stack([column / (length - 1), row, 2.0 * side - 1.0], axis=-1).astype(float)


class CliffSim:
    """N corridors stepped with array operations."""

    single_observation_space, single_action_space = OBSERVATION, ACTION

    def __init__(self, num_envs: int) -> None:
        self.column_N, self.row_N = np.zeros(num_envs, int), np.ones(num_envs, int)
        self.length_N, self.side_N = np.full(num_envs, 4), np.ones(num_envs, int)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self.length_N, self.side_N = task["length"].astype(int), task["side"].astype(int)

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.column_N[ids] = start_column(self.length_N[ids], self.side_N[ids])
        self.row_N[ids] = 1
        return observe(self.column_N[ids], self.row_N[ids], self.length_N[ids],
                       self.side_N[ids])

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        move_N2 = MOVES[action_N] * active_N[:, None]
        column_N = np.clip(self.column_N + move_N2[:, 0], 0, self.length_N - 1)
        progress_N = PROGRESS * (column_N - self.column_N) * (2 * self.side_N - 1)
        self.column_N, self.row_N = column_N, np.clip(self.row_N + move_N2[:, 1], 0, 1)
        catastrophe_N, solved_N = outcome(self.column_N, self.row_N, self.length_N,
                                          self.side_N)
        goal_N, cliff_N = solved_N.astype(float), -catastrophe_N.astype(float)
        return SimStep(obs_NO=observe(self.column_N, self.row_N, self.length_N, self.side_N),
                       reward_N=progress_N + goal_N + cliff_N,
                       terms={"progress": progress_N, "goal": goal_N, "cliff": cliff_N},
                       terminated_N=catastrophe_N | solved_N,
                       diverged_N=np.zeros(len(action_N), dtype=bool),
                       outcomes={"catastrophe": catastrophe_N, "solved": solved_N})


class CliffEnv(TaskEnv):
    """One corridor, written with scalars: the reference the batched env is checked against."""

    observation_space, action_space = OBSERVATION, ACTION

    def first_observation(self) -> np.ndarray:
        self.column = int(start_column(self.task.length, self.task.side))
        self.row = 1
        return observe(self.column, self.row, self.task.length, self.task.side)

    def step(self, action):
        self.check_ready()
        dc, dr = MOVES[check_choice(action, 4, "move")]
        column = min(max(self.column + dc, 0), self.task.length - 1)
        progress = PROGRESS * (column - self.column) * (2 * self.task.side - 1)
        self.column = column
        self.row = min(max(self.row + dr, 0), 1)
        catastrophe, solved = (bool(x) for x in outcome(self.column, self.row,
                                                         self.task.length, self.task.side))
        info = {"diverged": False, "reward_progress": progress, "reward_goal": float(solved),
                "reward_cliff": -float(catastrophe), "outcome_catastrophe": catastrophe,
                "outcome_solved": solved}
        obs = observe(self.column, self.row, self.task.length, self.task.side)
        reward = progress + float(solved) - float(catastrophe)
        return obs, reward, catastrophe or solved, False, info


def cliff() -> tasks.TaskFamily:
    make_vec, make_env = env_factories(CliffSim, CliffEnv)
    sides = tasks.choice("side", [0, 1])
    return tasks.TaskFamily(
        name="cliff",
        params=[tasks.Param("side", values=(0, 1), labels=("left", "right"),
                            doc="which end the goal is at"),
                tasks.Param("length", values=(4, 5, 6, 7, 8), doc="columns")],
        splits={"train": tasks.product([sides, tasks.choice("length", [4, 5, 6])]),
                "test-ood": tasks.product([sides, tasks.choice("length", [7, 8])])},
        horizon=HORIZON, make_vec=make_vec, make_env=make_env,
        outcomes=("catastrophe", "solved"), default_task={"side": 1, "length": 4},
        doc="walk along a cliff edge to the goal; OOD: longer corridors")


tasks.register(cliff)
