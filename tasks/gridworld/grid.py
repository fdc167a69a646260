"""GridSim: N gridworld levels stepped together with array operations, under MiniGrid's
rules (actions, moves, rewards, terminations) and with its egocentric observation: the
7 x 7 cells in front of the agent, occluded by walls, each encoded as MiniGrid's
(object, colour, state) triple.

A level is its cells (MiniGrid object indices, indexed [x, y]), the agent's start cell
and direction. Levels of different sizes share one batch: every level is padded with
walls to the largest, plus a margin of a view's width, so a view never leaves the array
(MiniGrid also shows walls outside the grid).

Letters in names: N levels, X and Y cell coordinates, V the view's width (7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from tasks.vector import SimStep

# MiniGrid's object and colour indices (minigrid.core.constants) of the cells we use
UNSEEN, EMPTY, WALL, GOAL, LAVA = 0, 1, 2, 8, 9
COLOUR = np.zeros(11)  # MiniGrid's colour of an object: grey walls, green goal, red lava
COLOUR[[WALL, GOAL, LAVA]] = (5, 1, 0)
LEFT, RIGHT, FORWARD = 0, 1, 2  # MiniGrid's actions; 3-6 (pickup, drop, toggle, done)
ACTIONS = 7                     # change nothing in these levels
DIRECTIONS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])  # right, down, left, up
V = 7  # the view's width and height
AGENT_IN_VIEW = (V // 2, V - 1)

OBSERVATION_SPACE = spaces.Box(0.0, 10.0, (V * V * 3,), np.float64)
ACTION_SPACE = spaces.Discrete(ACTIONS)


@dataclass(frozen=True)
class Level:
    """One level: cells [X, Y] of MiniGrid object indices, the agent's start and heading."""

    cells: np.ndarray
    start: tuple[int, int]
    direction: int


def _view_offsets() -> np.ndarray:
    """[4, V, V, 2]: for each heading, the (dx, dy) from the agent to the cell shown at
    view cell (i, j), as MiniGrid makes the view: slice V x V cells around the agent, then
    rotate the slice left heading + 1 times (so the agent looks up, from (3, 6))."""
    offsets = np.zeros((4, V, V, 2), dtype=np.int64)
    for heading in range(4):
        top = {0: (0, -(V // 2)), 1: (-(V // 2), 0), 2: (-V + 1, -(V // 2)),
               3: (-(V // 2), -V + 1)}[heading]
        view = np.stack(np.meshgrid(np.arange(V), np.arange(V), indexing="ij"), -1) + top
        for _ in range(heading + 1):  # MiniGrid's rotate_left: new[j, V-1-i] = old[i, j]
            rotated = np.empty_like(view)
            for i in range(V):
                for j in range(V):
                    rotated[j, V - 1 - i] = view[i, j]
            view = rotated
        offsets[heading] = view
    return offsets


VIEW_OFFSETS = _view_offsets()


def visible(objects_NVV: np.ndarray) -> np.ndarray:
    """MiniGrid's occlusion (Grid.process_vis), for N views at once: light spreads from
    the agent's cell row by row, away from the agent, and stops behind walls."""
    see_behind = np.ascontiguousarray((objects_NVV != WALL).transpose(1, 2, 0))  # [V, V, N]
    mask = np.zeros(see_behind.shape, dtype=bool)
    mask[AGENT_IN_VIEW[0], AGENT_IN_VIEW[1]] = True
    for j in reversed(range(V)):
        for i in range(V - 1):  # to the right; each step uses what the last one lit
            spread = mask[i, j] & see_behind[i, j]
            mask[i + 1, j] |= spread
            if j > 0:
                mask[i + 1, j - 1] |= spread
                mask[i, j - 1] |= spread
        for i in reversed(range(1, V)):  # to the left
            spread = mask[i, j] & see_behind[i, j]
            mask[i - 1, j] |= spread
            if j > 0:
                mask[i - 1, j - 1] |= spread
                mask[i, j - 1] |= spread
    return mask.transpose(2, 0, 1)


class GridSim:
    """N levels under MiniGrid's rules. `levels(task_arrays)` gives each simulation its
    Level; `horizon` is MiniGrid's max_steps, which scales the goal's reward:
    1 - 0.9 * steps / horizon. Stepping into lava ends the episode with reward 0 (the
    outcome `catastrophe`); reaching the goal ends it (`solved`)."""

    single_observation_space = OBSERVATION_SPACE
    single_action_space = ACTION_SPACE

    def __init__(self, num_envs: int, levels: Callable[[dict[str, np.ndarray]],
                                                       Sequence[Level]],
                 horizon: int) -> None:
        self.levels = levels
        self.horizon = horizon
        self.cells_NXY = np.full((num_envs, 1 + 2 * V, 1 + 2 * V), WALL, dtype=np.uint8)
        self.start_N2 = np.full((num_envs, 2), V)
        self.start_direction_N = np.zeros(num_envs, dtype=np.int64)
        self.pos_N2 = self.start_N2.copy()  # in padded coordinates (cell + V)
        self.view_flat_offsets = VIEW_OFFSETS[..., 0] * (1 + 2 * V) + VIEW_OFFSETS[..., 1]
        self.direction_N = self.start_direction_N.copy()
        self.steps_N = np.zeros(num_envs, dtype=np.int64)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        levels = list(self.levels(task))
        width = max(level.cells.shape[0] for level in levels)
        height = max(level.cells.shape[1] for level in levels)
        cells = np.full((len(levels), width + 2 * V, height + 2 * V), WALL, dtype=np.uint8)
        for n, level in enumerate(levels):
            w, h = level.cells.shape
            cells[n, V:V + w, V:V + h] = level.cells
        self.cells_NXY = cells
        # each heading's view cells as offsets into cells.ravel() from the agent's cell
        self.view_flat_offsets = VIEW_OFFSETS[..., 0] * cells.shape[2] + VIEW_OFFSETS[..., 1]
        self.start_N2 = np.array([level.start for level in levels]) + V
        self.start_direction_N = np.array([level.direction for level in levels])

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.pos_N2[ids] = self.start_N2[ids]
        self.direction_N[ids] = self.start_direction_N[ids]
        self.steps_N[ids] = 0
        return self.observe(ids)

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        n = len(action_N)
        self.steps_N += active_N
        moving_N = self.turn(action_N, active_N)
        front_N2 = self.pos_N2 + DIRECTIONS[self.direction_N]
        ahead_N = self.cells_NXY[np.arange(n), front_N2[:, 0], front_N2[:, 1]]
        self.pos_N2 = np.where((moving_N & (ahead_N != WALL))[:, None], front_N2,
                               self.pos_N2)
        solved_N = moving_N & (ahead_N == GOAL)
        catastrophe_N = moving_N & (ahead_N == LAVA)
        reward_N = np.where(solved_N, 1.0 - 0.9 * self.steps_N / self.horizon, 0.0)
        return SimStep(obs_NO=self.observe(), reward_N=reward_N, terms={"goal": reward_N},
                       terminated_N=solved_N | catastrophe_N,
                       diverged_N=np.zeros(n, dtype=bool),
                       outcomes={"catastrophe": catastrophe_N, "solved": solved_N})

    def turn(self, action_N: np.ndarray, active_N: np.ndarray) -> np.ndarray:
        """MiniGrid's actions: turn left or right, or move forward. Sets the headings;
        returns which simulations move forward."""
        turn = np.where(action_N == LEFT, -1, np.where(action_N == RIGHT, 1, 0))
        self.direction_N = np.where(active_N, (self.direction_N + turn) % 4,
                                    self.direction_N)
        return active_N & (action_N == FORWARD)

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        """MiniGrid's `image` of simulations `ids` (all by default), flattened:
        [len(ids), V * V * 3], in the order of image.reshape(-1) (x, y, the triple)."""
        return self.egocentric(np.arange(len(self.pos_N2)) if ids is None else ids)

    def egocentric(self, ids: np.ndarray) -> np.ndarray:
        _, width, height = self.cells_NXY.shape
        agent = (ids * width + self.pos_N2[ids, 0]) * height + self.pos_N2[ids, 1]
        flat = agent[:, None, None] + self.view_flat_offsets[self.direction_N[ids]]
        objects = self.cells_NXY.ravel().take(flat)  # [n, V, V]
        objects *= visible(objects)  # unseen cells: 0
        objects[:, AGENT_IN_VIEW[0], AGENT_IN_VIEW[1]] = EMPTY  # the agent sees its cell
        image = np.zeros((len(ids), V, V, 3))
        image[..., 0] = objects
        image[..., 1] = COLOUR[objects]
        return image.reshape(len(ids), -1)
