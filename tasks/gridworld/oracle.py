"""The gridworlds' scripted oracle: the shortest lava-free way to the goal, seeing the
whole map.

Its observations alone do not say where the agent is (the egocentric view), so the
oracle keeps a mirror of the levels: a simulator of its own, stepped with the oracle's
own actions (the levels are deterministic, so the mirror stays where the env is) and
reset where the caller says episodes ended. For each level it computes once, by
breadth-first search backwards from the goal, the number of steps to the goal from every
state (cell and heading) without entering lava, and then takes the action that lowers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from tasks.gridworld.grid import FORWARD, GOAL, LAVA, LEFT, RIGHT, WALL, GridSim

UNREACHABLE = np.iinfo(np.int32).max


def steps_to_goal(cells: np.ndarray, successors: Callable) -> np.ndarray:
    """[X, Y, 4]: steps from each (cell, heading) to the goal, never through lava
    (UNREACHABLE where there is no such way). `successors(x, y, heading)` lists the
    (action, (x, y, heading)) the rules allow."""
    width, height = cells.shape
    states = [(x, y, h) for x in range(width) for y in range(height) for h in range(4)
              if cells[x, y] not in (WALL, LAVA)]
    predecessors: dict[tuple, list[tuple]] = {s: [] for s in states}
    for state in states:
        if cells[state[0], state[1]] == GOAL:
            continue  # the episode ends there
        for _, after in successors(*state):
            if after in predecessors:
                predecessors[after].append(state)
    distance = np.full((width, height, 4), UNREACHABLE, dtype=np.int64)
    frontier = deque()
    for x, y, h in states:
        if cells[x, y] == GOAL:
            distance[x, y, h] = 0
            frontier.append((x, y, h))
    while frontier:
        state = frontier.popleft()
        for before in predecessors[state]:
            if distance[before] == UNREACHABLE:
                distance[before] = distance[state] + 1
                frontier.append(before)
    return distance


class ShortestPathOracle:
    """A family's oracle: `start(task_arrays)` begins acting on N levels (a Run).
    `make_sim(n)` builds the family's simulator, `rules` the successors of a state."""

    def __init__(self, make_sim: Callable[[int], GridSim], rules: Callable) -> None:
        self.make_sim, self.rules = make_sim, rules
        self._tables: dict[bytes, np.ndarray] = {}

    def start(self, task: dict[str, np.ndarray]) -> Run:
        """Act on these levels, from their first observation on."""
        sim = self.make_sim(len(next(iter(task.values()))))
        sim.set_tasks(task)
        return Run(sim, self.rules, [self.table(cells) for cells in sim.cells_NXY])

    def table(self, cells: np.ndarray) -> np.ndarray:
        """steps_to_goal of a level's (padded) cells, computed once per layout."""
        key = cells.tobytes() + np.array(cells.shape).tobytes()
        if key not in self._tables:
            self._tables[key] = steps_to_goal(
                cells, lambda x, y, h: self.rules(cells, x, y, h))
        return self._tables[key]


class Run:
    """The oracle acting on N levels: a mirror simulator and each level's table."""

    def __init__(self, sim: GridSim, rules: Callable, tables: list[np.ndarray]) -> None:
        self.sim, self.rules, self.tables = sim, rules, tables
        self.sim.reset(np.arange(len(tables)), [])

    def __call__(self, obs_NO: np.ndarray, task: dict[str, np.ndarray]) -> np.ndarray:
        """The next action on every level (the one that most lowers the steps left to
        the goal), and the mirror stepped with it."""
        n = len(self.tables)
        action_N = np.zeros(n, dtype=np.int64)
        for i, table in enumerate(self.tables):
            x, y = (int(v) for v in self.sim.pos_N2[i])
            choices = self.rules(self.sim.cells_NXY[i], x, y, int(self.sim.direction_N[i]))
            action_N[i] = min(choices, key=lambda choice: table[choice[1]])[0]
        self.sim.step(action_N, np.ones(n, dtype=bool))
        return action_N

    def ended(self, ended_N: np.ndarray) -> None:
        """Episodes that ended start again, in the mirror too."""
        ids = np.flatnonzero(ended_N)
        if len(ids):
            self.sim.reset(ids, [])


def minigrid_rules(cells: np.ndarray, x: int, y: int, heading: int) -> list[tuple]:
    """MiniGrid's moves from (x, y, heading): turn left, turn right, forward (not into a
    wall). A simulator's cells are padded with walls, so a neighbour always exists."""
    dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[heading]
    moves = [(LEFT, (x, y, (heading - 1) % 4)), (RIGHT, (x, y, (heading + 1) % 4))]
    if cells[x + dx, y + dy] != WALL:
        moves.append((FORWARD, (x + dx, y + dy, heading)))
    return moves


def compass_rules(cells: np.ndarray, x: int, y: int, heading: int) -> list[tuple]:
    """lava-world's moves: up, right, down, left (walls stop the agent)."""
    moves = []
    for action, ((dx, dy), new_heading) in enumerate(zip(
            ((0, -1), (1, 0), (0, 1), (-1, 0)), (3, 0, 1, 2), strict=True)):
        blocked = cells[x + dx, y + dy] == WALL
        moves.append((action, (x, y, new_heading) if blocked else
                      (x + dx, y + dy, new_heading)))
    return moves
