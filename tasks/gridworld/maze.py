"""maze: find the way through a procedurally generated maze to the goal, seeing the whole
map (the gridworld counterpart of Procgen's maze).

Our own generator makes each level from its seed and size (numpy's default_rng seeded by
(seed, size)): a perfect maze drawn by a randomized depth-first search (the recursive
backtracker) over the cells at odd coordinates of a square of `size` cells, walls
included, so every free cell is reachable from every other one by exactly one path. The
agent starts in the top-left corner (1, 1); the goal is drawn uniformly among the free
cells at least half as far from the start, along the maze, as the farthest one.

| actions     | 0 up, 1 right, 2 down, 3 left: one cell; a wall stops the agent          |
|-------------|--------------------------------------------------------------------------|
| observation | the whole map, padded with walls to the largest (test-ood) size M, as    |
|             | three 0/1 planes: wall, goal, agent; [M, M, 3] (x, y, plane) flattened   |
| reward      | 1 - 0.9 t / horizon on reaching the goal at step t (the episode ends)    |
| horizon     | HORIZON_PER_FREE_CELL x the free cells of the largest maze (194 for the  |
|             | default sizes)                                                           |

Outcomes: `solved` (reached the goal) and `looping`, flagged once per episode at the
step that leaves the agent in one cell for the (LOOP_VISITS + 1)-th time: every step
ends in a cell, the one entered or, bumping into a wall, the one the agent stays in. The
shortest path never loops. A deterministic Markov policy that does not reach the goal
repeats one cycle of cells (or one bump into a wall) until the horizon, so it is flagged
within LOOP_VISITS + 1 rounds of it. The episode goes on after `looping`.

A task is a level: its `size` and the generator's `level` seed. Train: the first
`train_levels` seeds whose levels differ, seed s with the (s mod k)-th of the k odd
sizes from min_size to max_size, so every size has its share. Test-id: fresh seeds (from
10^6 up), of a size drawn uniformly from the same sizes. Test-ood: larger mazes (the odd
sizes above max_size, up to max_size + 4).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.gridworld.grid import EMPTY, GOAL, WALL, GridSim, Level, V
from tasks.gridworld.lava_world import AGENT, MOVES, TEST_SEEDS, LavaWorldSim
from tasks.gridworld.levels import check_train_levels, first_distinct_seeds
from tasks.gridworld.oracle import ShortestPathOracle, compass_rules
from tasks.regions import Param, box, choice, product, union
from tasks.resources import refuse_unless_fits
from tasks.simple import TaskEnv, check_choice
from tasks.vector import BatchedEnv, SimStep

MIN_SIZE, MAX_SIZE, TRAIN_LEVELS = 7, 11, 200
OOD_GROWTH = 4  # test-ood sizes: the odd sizes in (max_size, max_size + OOD_GROWTH]
PLANES = np.array([WALL, GOAL, AGENT])  # the observation's planes, in order (MiniGrid's
AGENT_PLANE = 2                         # object indices; no cell holds the agent's)
LOOP_VISITS = 4  # ending more steps than this in one cell in an episode is `looping`
# a walk along one wall crosses each of the F - 1 joins between neighbouring free cells of
# a maze (F free cells) at most twice, so it reaches the goal of any maze of the family
# within the horizon
HORIZON_PER_FREE_CELL = 2
LEVEL_BYTES = 1000  # memory of a training level besides its cells (measured): the cached
                    # Level and the split's box that holds it


def free_cells(size: int) -> int:
    """Free cells of a perfect maze of `size`: r^2 rooms and r^2 - 1 passages joining
    them into a tree, r = (size - 1) / 2."""
    rooms = (size - 1) // 2
    return 2 * rooms * rooms - 1


@functools.lru_cache(maxsize=65536)
def level(size: int, seed: int) -> Level:
    """The level of a seed: a perfect maze of size x size cells (odd, walls included),
    the agent at (1, 1) and the goal in the far half of the maze."""
    rng = np.random.default_rng([seed, size])
    cells = np.full((size, size), WALL, dtype=np.uint8)
    rooms = (size - 1) // 2
    first = tuple(2 * int(v) + 1 for v in rng.integers(rooms, size=2))
    cells[first] = EMPTY
    path = [first]
    while path:  # the recursive backtracker: carve to an unvisited room, or back up
        x, y = path[-1]
        options = [(dx, dy) for dx, dy in MOVES.tolist()
                   if 0 < x + 2 * dx < size and 0 < y + 2 * dy < size
                   and cells[x + 2 * dx, y + 2 * dy] == WALL]
        if not options:
            path.pop()
            continue
        dx, dy = options[int(rng.integers(len(options)))]
        cells[x + dx, y + dy] = cells[x + 2 * dx, y + 2 * dy] = EMPTY
        path.append((x + 2 * dx, y + 2 * dy))
    start = (1, 1)
    distance = maze_distances(cells, start)
    far = np.argwhere(2 * distance >= distance.max())
    cells[tuple(far[int(rng.integers(len(far)))])] = GOAL
    cells.flags.writeable = False
    return Level(cells=cells, start=start, direction=0)


def maze_distances(cells: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """[X, Y]: moves from `start` to each free cell along the maze (-1 for walls)."""
    distance = np.full(cells.shape, -1, dtype=np.int64)
    distance[start] = 0
    frontier = deque([start])
    while frontier:
        x, y = frontier.popleft()
        for dx, dy in MOVES.tolist():
            cell = (x + dx, y + dy)
            if cells[cell] != WALL and distance[cell] < 0:
                distance[cell] = distance[x, y] + 1
                frontier.append(cell)
    return distance


def levels_of(task: dict[str, np.ndarray]) -> list[Level]:
    return [level(int(size), int(seed))
            for size, seed in zip(task["size"], task["level"], strict=True)]


def observation_space(map_size: int) -> spaces.Box:
    return spaces.Box(0.0, 1.0, (map_size * map_size * len(PLANES),), np.float64)


class MazeSim(GridSim):
    """GridSim with compass moves, the whole map as the observation and the `looping`
    outcome (the steps ending in each cell counted per episode)."""

    single_action_space = spaces.Discrete(len(MOVES))
    turn = LavaWorldSim.turn  # the same compass moves: the heading becomes the move's

    def __init__(self, num_envs: int, levels: Callable[[dict[str, np.ndarray]],
                                                       Sequence[Level]],
                 horizon: int, *, map_size: int) -> None:
        super().__init__(num_envs, levels, horizon)
        self.map_size = map_size
        self.single_observation_space = observation_space(map_size)
        self.map_NXYP = np.zeros((num_envs, map_size, map_size, len(PLANES)))
        self.entries_NXY = np.zeros(self.cells_NXY.shape, dtype=np.int64)
        self.looped_N = np.zeros(num_envs, dtype=bool)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        super().set_tasks(task)
        n, width, _ = self.cells_NXY.shape
        inner = width - 2 * V  # the largest level's size; beyond each level, walls
        cells = np.full((n, self.map_size, self.map_size), WALL, dtype=np.uint8)
        cells[:, :inner, :inner] = self.cells_NXY[:, V:V + inner, V:V + inner]
        self.map_NXYP = (cells[..., None] == PLANES).astype(np.float64)
        self.entries_NXY = np.zeros(self.cells_NXY.shape, dtype=np.int64)
        self.looped_N = np.zeros(n, dtype=bool)

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.entries_NXY[ids] = 0
        self.looped_N[ids] = False
        return super().reset(ids, rngs)

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        out = super().step(action_N, active_N)
        rows = np.flatnonzero(active_N)
        x, y = self.pos_N2[rows, 0], self.pos_N2[rows, 1]
        self.entries_NXY[rows, x, y] += 1
        looping_N = np.zeros(len(action_N), dtype=bool)
        looping_N[rows] = self.entries_NXY[rows, x, y] > LOOP_VISITS
        looping_N &= ~self.looped_N
        self.looped_N |= looping_N
        out.outcomes = {"solved": out.outcomes["solved"], "looping": looping_N}
        return out

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        """The map's planes with the agent on them, flattened: [len(ids), M * M * 3]."""
        ids = np.arange(len(self.pos_N2)) if ids is None else ids
        planes = self.map_NXYP[ids]
        planes[np.arange(len(ids)), self.pos_N2[ids, 0] - V, self.pos_N2[ids, 1] - V,
               AGENT_PLANE] = 1.0
        return planes.reshape(len(ids), -1)


class MazeEnv(TaskEnv):
    """The single reference env: one level, stepped with scalars."""

    action_space = spaces.Discrete(len(MOVES))

    def __init__(self, *, family: TaskFamily, task: Any, map_size: int) -> None:
        self.map_size = map_size
        self.observation_space = observation_space(map_size)
        super().__init__(family=family, task=task)

    def first_observation(self) -> np.ndarray:
        self._level = level(int(self.task.size), int(self.task.level))
        self._pos, self._steps = self._level.start, 0
        self._entries: dict[tuple[int, int], int] = {}
        self._looped = False
        return self._observe()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        move = check_choice(action, len(MOVES), "move")
        self._steps += 1
        target = (self._pos[0] + int(MOVES[move][0]), self._pos[1] + int(MOVES[move][1]))
        cell = self._level.cells[target]
        if cell != WALL:
            self._pos = target
        self._entries[self._pos] = self._entries.get(self._pos, 0) + 1
        looping = self._entries[self._pos] > LOOP_VISITS and not self._looped
        self._looped = self._looped or looping
        solved = bool(cell == GOAL)
        reward = 1.0 - 0.9 * self._steps / self.family.horizon if solved else 0.0
        info = {"diverged": False, "reward_goal": reward, "outcome_solved": solved,
                "outcome_looping": looping}
        return self._observe(), reward, solved, False, info

    def _observe(self) -> np.ndarray:
        size = self._level.cells.shape[0]
        planes = np.zeros((self.map_size, self.map_size, len(PLANES)))
        for i in range(self.map_size):
            for j in range(self.map_size):
                cell = self._level.cells[i, j] if i < size and j < size else WALL
                planes[i, j, 0], planes[i, j, 1] = cell == WALL, cell == GOAL
        planes[self._pos[0], self._pos[1], AGENT_PLANE] = 1.0
        return planes.reshape(-1)


def check_size(size: Any, option: str, low: int, allowed: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < low or size % 2 == 0:
        raise ValueError(f"family 'maze': option {option} must be an odd integer >= "
                         f"{allowed}, got {size!r}")


def maze(*, min_size: int = MIN_SIZE, max_size: int = MAX_SIZE,
         train_levels: int = TRAIN_LEVELS) -> TaskFamily:
    """Options: min_size and max_size (the training mazes' sizes, walls included: odd,
    5 <= min_size <= max_size), train_levels (>= 1)."""
    check_size(min_size, "min_size", 5, "5")
    check_size(max_size, "max_size", 5, "5")
    if max_size < min_size:
        raise ValueError(f"family 'maze': option min_size must be <= option max_size, got "
                         f"min_size={min_size} and max_size={max_size}")
    check_train_levels("maze", train_levels)
    refuse_unless_fits(f"family 'maze' with option max_size={max_size} and option "
                       f"train_levels={train_levels}",
                       train_levels * (LEVEL_BYTES + max_size * max_size))
    sizes = tuple(range(min_size, max_size + 1, 2))
    ood_sizes = tuple(range(max_size + 2, max_size + OOD_GROWTH + 1, 2))
    map_size = ood_sizes[-1]
    horizon = HORIZON_PER_FREE_CELL * free_cells(map_size)

    def size_of(seed: int) -> int:
        return sizes[seed % len(sizes)]

    seeds = first_distinct_seeds(lambda seed: level(size_of(seed), seed), train_levels,
                                 family="maze", generator=f"sizes {min_size} to {max_size}")

    def make_vec(family: TaskFamily, tasks: Any, *, seed: int | None = None,
                 horizon: int | None = None, autoreset_mode: str = "next-step"
                 ) -> BatchedEnv:
        horizon = family.horizon if horizon is None else horizon
        sim = MazeSim(len(tasks), levels_of, horizon, map_size=map_size)
        return BatchedEnv(family=family, simulator=sim, tasks=tasks, horizon=horizon,
                          autoreset_mode=autoreset_mode, seed=seed)

    def make_env(family: TaskFamily, task: Any) -> MazeEnv:
        return MazeEnv(family=family, task=task, map_size=map_size)

    train = union([product([choice("size", [size_of(s)]), choice("level", [s])])
                   for s in seeds])
    return TaskFamily(
        name="maze",
        params=[Param("size", values=sizes + ood_sizes, doc="the maze's width and height, "
                      "walls included"),
                Param("level", 0.0, float(TEST_SEEDS[1]), doc="the generator's seed")],
        splits={"train": train,
                "test-id": product([choice("size", sizes), box(level=TEST_SEEDS)]),
                "test-ood": product([choice("size", ood_sizes), box(level=TEST_SEEDS)])},
        horizon=horizon, make_vec=make_vec, make_env=make_env,
        outcomes=("solved", "looping"),
        oracle=ShortestPathOracle(lambda n: MazeSim(n, levels_of, horizon,
                                                    map_size=map_size), compass_rules),
        default_task={"size": size_of(seeds[0]), "level": float(seeds[0])},
        doc=f"find the way through a perfect maze to the goal, seeing the map (sizes "
            f"{min_size} to {max_size}); train: {train_levels} levels; OOD: sizes "
            f"{ood_sizes[0]} to {map_size}")
