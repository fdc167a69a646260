"""lava-jump: run and jump along a side-on level to the coin at its far end, over lava
pits (a CoinRun-like platformer on a grid). Once airborne the agent cannot steer until it
lands, so a bad jump commits it to the lava several steps ahead: a catastrophe is decided
before it happens (`decision_lead`), where lava-world's is decided on the step that
enters the lava.

A level is `length` columns by HEIGHT rows, cells[x, y] (x the column from the left, y
the row from the bottom) of MiniGrid object indices: EMPTY, GROUND (MiniGrid's wall:
solid), LAVA (at the bottom of pits) and COIN (MiniGrid's goal, at the far right end).
Beyond the level, cells are ground to the left, right and below, and empty above. The
agent occupies one cell and starts on the ground in column 1.

Physics, integer and deterministic. The agent is on the ground when the cell below it is
solid (it lands, or stays, there). On the ground its action sets its velocity (vx, vy);
in the air the action is ignored: no steering until it lands.

| actions     | 0 stay, 1 run left, 2 run right, 3 jump up, 4 jump left, 5 jump right:    |
|             | (vx, vy) = (0, 0), (-1, 0), (1, 0), (0, 2), (-1, 2), (1, 2)               |
| a step      | move vx cells sideways (a solid cell stops the agent and sets vx to 0);   |
|             | then abs(vy) cells up or down, one at a time (a solid cell above stops    |
|             | the rise and sets vy to 0, one below ends the fall); then gravity, vy -=  |
|             | 1, not below -MAX_FALL; with solid ground below and vy <= 0 it lands (vx  |
|             | = vy = 0), else it is airborne. Running off an edge starts a fall.        |
| observation | the cells within VIEW_X columns and VIEW_Y rows of the agent (15 x 11),   |
|             | as three 0/1 planes: ground, lava, coin; [15, 11, 3] (x, y, plane)        |
|             | flattened; then vx, vy / JUMP_SPEED and 1 if airborne: 498 numbers        |
| reward      | 1 - 0.9 t / horizon on reaching the coin at step t (the episode ends)     |
| horizon     | HORIZON_PER_COLUMN x length (144 for the default length, 48)              |

A jump on flat ground flies 5 steps and 5 cells forward, 3 rows high: (1, 2), (2, 3),
(3, 3), (4, 2), (5, 0) from its start. So a pit w cells wide is crossed only by a jump
from one of the last 5 - w cells before it; one from up to w cells earlier comes down in
it. Outcomes: `catastrophe` (entered lava: the episode ends, reward 0) and `solved`
(entered the coin).

Our own generator makes each level from its seed (numpy's default_rng seeded by (seed,
length, hard)): flat ground for START_RUN columns, then features, each followed by a
flat run: a lava pit (lava on the bottom row, nothing above it), a step up or down, or a
wide pit with a floating platform in it (jump onto the platform, then off it); the coin
stands on the last column. The ground is 2 to 5 rows high and a fall starts only on the
step after the agent leaves the ground, so the lava is entered 2 or more steps after the
last step on the ground: every catastrophe is decided at least 3 steps before it
(`decision_lead` >= 3). A level is redrawn until the oracle's search reaches the coin.

A task is a level: the generator's `level` seed, and `hard` (0 standard, 1 hard). Train:
the first `train_levels` seeds whose standard levels differ. Test-id: fresh seeds (from
10^6 up), standard. Test-ood: fresh seeds, hard: wider pits (3-4 cells, not 2-3), more of
them (shorter flat runs between features, 2-4 cells, not 3-6; about 4.4 pits and 18 lava
columns a level of 48, not 3 and 10), steps up to 3 rows (not 2).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.gridworld.grid import EMPTY, LAVA, Level
from tasks.gridworld.grid import GOAL as COIN
from tasks.gridworld.grid import WALL as GROUND
from tasks.gridworld.lava_world import TEST_SEEDS
from tasks.gridworld.levels import check_train_levels, first_distinct_seeds
from tasks.regions import Param, box, choice, product
from tasks.resources import refuse_unless_fits
from tasks.simple import TaskEnv, check_choice
from tasks.vector import BatchedEnv, SimStep

HEIGHT = 10
LOWEST, HIGHEST = 2, 5  # the ground's height: rows 0 to h - 1 solid, the agent on row h
JUMP_SPEED, MAX_FALL = 2, 2
# (vx, vy) set by each action on the ground: stay, run left/right, jump up/left/right
ACTION_VELOCITY = ((0, 0), (-1, 0), (1, 0), (0, JUMP_SPEED), (-1, JUMP_SPEED),
                   (1, JUMP_SPEED))
VELOCITY_A2 = np.array(ACTION_VELOCITY)
VIEW_X, VIEW_Y = 7, 5  # cells seen on either side of the agent: a jump's 5 cells and more
PLANES = np.array([GROUND, LAVA, COIN])  # the observation's planes, in order
AIRBORNE = -1  # the observation's last number: 1 when the agent is in the air
LENGTH, MIN_LENGTH, MAX_LENGTH = 48, 24, 500
TRAIN_LEVELS = 200
START_RUN, END_RUN = 8, 4  # flat columns at the start (5 steps cannot reach the first
                           # feature) and at the end, the coin on the last one
# the oracle needs about one step per column (a jump flies as fast as a run); a random
# walk rarely gets that far
HORIZON_PER_COLUMN = 3
LEVEL_BYTES = 1000  # memory of a training level besides its cells (measured: about 800):
                    # the cached Level and the split's box that holds it

State = tuple[int, int, int, int, bool]  # x, y, vx, vy, airborne


@dataclass(frozen=True)
class Terrain:
    """A generator's settings: the features it draws and their sizes (cells)."""

    pits: tuple[int, int]  # a lava pit's width: from, to (inclusive)
    max_step: int  # the largest change of the ground's height at a step
    pit_chance: float  # chance that a feature is a pit; else a platform, or a step
    platform_chance: float
    runs: tuple[int, int]  # flat ground after each feature: from, to (inclusive)


STANDARD = Terrain(pits=(2, 3), max_step=2, pit_chance=0.45, platform_chance=0.15,
                   runs=(3, 6))
HARD = Terrain(pits=(3, 4), max_step=3, pit_chance=0.7, platform_chance=0.15, runs=(2, 4))


def kind(cells: np.ndarray, x: int, y: int) -> int:
    """The cell at (x, y) of a level; beyond it, ground except above the level (empty)."""
    width, height = cells.shape
    if y >= height:
        return EMPTY
    if y < 0 or not 0 <= x < width:
        return GROUND
    return int(cells[x, y])


def fly(cells: np.ndarray, state: State, action: int) -> tuple[State, int]:
    """One step of the physics from `state`: the next state, and the kind of the last cell
    entered (EMPTY if none; LAVA or COIN ends the episode, where the motion stops)."""
    x, y, vx, vy, airborne = state
    if not airborne:
        vx, vy = ACTION_VELOCITY[action]
    entered = EMPTY
    if vx != 0:
        if kind(cells, x + vx, y) == GROUND:
            vx = 0
        else:
            x += vx
            entered = kind(cells, x, y)
    sign = 1 if vy > 0 else -1
    for _ in range(abs(vy)):
        if entered in (LAVA, COIN):
            break
        if kind(cells, x, y + sign) == GROUND:  # a ceiling, or the ground: landing
            vy = 0 if sign > 0 else vy
            break
        y += sign
        entered = kind(cells, x, y)
    vy = max(vy - 1, -MAX_FALL)
    if vy <= 0 and kind(cells, x, y - 1) == GROUND:
        return (x, y, 0, 0, False), entered
    return (x, y, vx, vy, True), entered


def shortest_plan(cells: np.ndarray, start: tuple[int, int]) -> tuple[int, ...] | None:
    """The fewest actions that take the agent from `start` (on the ground) to the coin
    without entering lava, by breadth-first search over its states (x, y, vx, vy,
    airborne); 0 in the air, where every action does the same. None if there is none."""
    first: State = (*start, 0, 0, False)
    came_from: dict[State, tuple[State, int] | None] = {first: None}
    frontier = deque([first])
    while frontier:
        state = frontier.popleft()
        for action in (0,) if state[4] else range(len(ACTION_VELOCITY)):
            after, entered = fly(cells, state, action)
            if entered == LAVA or after in came_from:
                continue
            came_from[after] = (state, action)
            if entered == COIN:
                actions = []
                while came_from[after] is not None:
                    after, action = came_from[after]
                    actions.append(action)
                return tuple(reversed(actions))
            frontier.append(after)
    return None


def decision_lead(airborne_T: Sequence[bool]) -> int:
    """How many steps before an episode's end its outcome was decided: given whether the
    agent was in the air when each of its T actions was taken (the observation's AIRBORNE
    flag before the action), T - t + 1 for the last step t taken on the ground. 1: the
    last step was a free choice (every step of lava-world is). On the ground, `stay` is
    always safe, so that step is the last at which a catastrophe could be avoided; in the
    air no action changes anything."""
    grounded = np.flatnonzero(~np.asarray(airborne_T, dtype=bool))
    if len(grounded) == 0:
        raise ValueError("an episode starts on the ground; every step given was airborne")
    return len(airborne_T) - int(grounded[-1])


def draw_terrain(rng: np.random.Generator, length: int, terrain: Terrain) -> np.ndarray:
    """[length, HEIGHT] cells: START_RUN flat columns, features each followed by a flat
    run while they fit, flat ground to the end and the coin on the last column."""
    cells = np.full((length, HEIGHT), EMPTY, dtype=np.uint8)
    h = int(rng.integers(LOWEST, HIGHEST + 1))
    cells[:START_RUN, :h] = GROUND
    x = START_RUN
    while True:
        run, draw = int(rng.integers(terrain.runs[0], terrain.runs[1] + 1)), rng.random()
        if draw < terrain.pit_chance + terrain.platform_chance:
            width = int(rng.integers(terrain.pits[0], terrain.pits[1] + 1))
            # on a platform the agent stands on row h + 2, and a jump rises 3 rows
            platform = draw >= terrain.pit_chance and h + 5 < HEIGHT
            before, size = (int(v) for v in rng.integers((1, 2), (3, 4)))
            if platform:  # the platform at h + 1, `before` cells into the pit
                width += before + size
            if x + width + run > length - END_RUN:
                break
            cells[x:x + width, 0] = LAVA
            if platform:
                cells[x + before:x + before + size, h + 1] = GROUND
            x += width
        else:
            heights = [g for g in range(LOWEST, HIGHEST + 1)
                       if 0 < abs(g - h) <= terrain.max_step]
            new = heights[int(rng.integers(len(heights)))]
            if x + run > length - END_RUN:
                break
            h = new
        cells[x:x + run, :h] = GROUND
        x += run
    cells[x:, :h] = GROUND
    cells[-1, h] = COIN
    return cells


@functools.lru_cache(maxsize=65536)
def level(length: int, hard: bool, seed: int) -> Level:
    """The level of a seed, drawn until the coin can be reached. The agent starts on the
    ground in column 1 (its `direction`, MiniGrid's heading, is 0: right)."""
    rng = np.random.default_rng([seed, length, int(hard)])
    while True:
        cells = draw_terrain(rng, length, HARD if hard else STANDARD)
        start = (1, int((cells[1] == GROUND).sum()))
        if shortest_plan(cells, start) is not None:
            cells.flags.writeable = False
            return Level(cells=cells, start=start, direction=0)


@functools.lru_cache(maxsize=65536)
def plan(length: int, hard: bool, seed: int) -> tuple[int, ...]:
    """The oracle's actions on a level, from its start to the coin."""
    found = level(length, hard, seed)
    return shortest_plan(found.cells, found.start)


def observation_space() -> spaces.Box:
    planes = (2 * VIEW_X + 1) * (2 * VIEW_Y + 1) * len(PLANES)
    low = np.concatenate([np.zeros(planes), [-1.0, -MAX_FALL / JUMP_SPEED, 0.0]])
    return spaces.Box(low, np.ones(planes + 3), dtype=np.float64)


class LavaJumpSim:
    """N levels stepped together with array operations. Each level is padded with PAD
    cells on every side (ground, and empty above the level), so a view and a move never
    leave the array; positions are in padded coordinates (cell + PAD).

    Letters in names: N levels, X columns, Y rows."""

    PAD = max(VIEW_X, VIEW_Y)
    single_action_space = spaces.Discrete(len(ACTION_VELOCITY))

    def __init__(self, num_envs: int, levels: Callable[[dict[str, np.ndarray]],
                                                       Sequence[Level]],
                 horizon: int) -> None:
        self.levels, self.horizon = levels, horizon
        self.single_observation_space = observation_space()
        pad = self.PAD
        self.cells_NXY = np.full((num_envs, 1 + 2 * pad, HEIGHT + 2 * pad), GROUND,
                                 dtype=np.uint8)
        self.start_N2 = np.full((num_envs, 2), pad)
        self.x_N, self.y_N = self.start_N2[:, 0].copy(), self.start_N2[:, 1].copy()
        self.vx_N = np.zeros(num_envs, dtype=np.int64)
        self.vy_N = np.zeros(num_envs, dtype=np.int64)
        self.airborne_N = np.zeros(num_envs, dtype=bool)
        self.steps_N = np.zeros(num_envs, dtype=np.int64)
        self.view_offsets = self._view_offsets()

    def _view_offsets(self) -> np.ndarray:
        """[2 VIEW_X + 1, 2 VIEW_Y + 1]: the view's cells as offsets into
        cells_NXY.ravel() from the agent's cell."""
        dx = np.arange(-VIEW_X, VIEW_X + 1)[:, None]
        dy = np.arange(-VIEW_Y, VIEW_Y + 1)[None, :]
        return dx * self.cells_NXY.shape[2] + dy

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        levels = list(self.levels(task))
        pad, width = self.PAD, max(found.cells.shape[0] for found in levels)
        cells = np.full((len(levels), width + 2 * pad, HEIGHT + 2 * pad), GROUND,
                        dtype=np.uint8)
        cells[:, :, pad + HEIGHT:] = EMPTY
        for n, found in enumerate(levels):
            cells[n, pad:pad + found.cells.shape[0], pad:pad + HEIGHT] = found.cells
        self.cells_NXY = cells
        self.view_offsets = self._view_offsets()
        self.start_N2 = np.array([found.start for found in levels]) + pad

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.x_N[ids], self.y_N[ids] = self.start_N2[ids, 0], self.start_N2[ids, 1]
        self.vx_N[ids] = self.vy_N[ids] = 0
        self.airborne_N[ids] = False
        self.steps_N[ids] = 0
        return self.observe(ids)

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        """`fly` for every level at once (the inactive ones are left as they are)."""
        rows, cells = np.arange(len(action_N)), self.cells_NXY
        self.steps_N += active_N
        vx = np.where(self.airborne_N, self.vx_N, VELOCITY_A2[action_N, 0])
        vy = np.where(self.airborne_N, self.vy_N, VELOCITY_A2[action_N, 1])
        x, y = self.x_N.copy(), self.y_N.copy()
        vx = np.where(cells[rows, x + vx, y] == GROUND, 0, vx)
        x += vx
        entered = np.where(vx != 0, cells[rows, x, y], EMPTY)
        sign = np.where(vy > 0, 1, -1)
        moving = np.ones(len(rows), dtype=bool)  # still moving vertically
        for k in range(max(JUMP_SPEED, MAX_FALL)):  # one cell at a time
            moving &= (np.abs(vy) > k) & (entered != LAVA) & (entered != COIN)
            solid = cells[rows, x, y + sign] == GROUND
            vy = np.where(moving & solid & (sign > 0), 0, vy)
            moving &= ~solid
            y += moving * sign
            entered = np.where(moving, cells[rows, x, y], entered)
        vy = np.maximum(vy - 1, -MAX_FALL)
        lands = (vy <= 0) & (cells[rows, x, y - 1] == GROUND)
        for name, new in (("x_N", x), ("y_N", y), ("vx_N", np.where(lands, 0, vx)),
                          ("vy_N", np.where(lands, 0, vy)), ("airborne_N", ~lands)):
            setattr(self, name, np.where(active_N, new, getattr(self, name)))
        solved_N = active_N & (entered == COIN)
        catastrophe_N = active_N & (entered == LAVA)
        reward_N = np.where(solved_N, 1.0 - 0.9 * self.steps_N / self.horizon, 0.0)
        return SimStep(obs_NO=self.observe(), reward_N=reward_N, terms={"goal": reward_N},
                       terminated_N=solved_N | catastrophe_N,
                       diverged_N=np.zeros(len(rows), dtype=bool),
                       outcomes={"catastrophe": catastrophe_N, "solved": solved_N})

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        """The view's planes and the agent's motion: [len(ids), 498]."""
        ids = np.arange(len(self.x_N)) if ids is None else ids
        _, width, height = self.cells_NXY.shape
        agent = (ids * width + self.x_N[ids]) * height + self.y_N[ids]
        view = self.cells_NXY.ravel().take(agent[:, None, None] + self.view_offsets)
        planes = (view[..., None] == PLANES).reshape(len(ids), -1)
        motion = np.stack([self.vx_N[ids], self.vy_N[ids] / JUMP_SPEED,
                           self.airborne_N[ids]], axis=-1)
        return np.concatenate([planes, motion], axis=-1, dtype=np.float64)


class LavaJumpEnv(TaskEnv):
    """The single reference env: one level, stepped with scalars (`fly`)."""

    action_space = spaces.Discrete(len(ACTION_VELOCITY))

    def __init__(self, *, family: TaskFamily, task: Any, length: int) -> None:
        self.length = length
        self.observation_space = observation_space()
        super().__init__(family=family, task=task)

    def first_observation(self) -> np.ndarray:
        self._level = level(self.length, bool(self.task.hard), int(self.task.level))
        self._state: State = (*self._level.start, 0, 0, False)
        self._steps = 0
        return self._observe()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        move = check_choice(action, len(ACTION_VELOCITY), "move")
        self._steps += 1
        self._state, entered = fly(self._level.cells, self._state, move)
        solved, catastrophe = entered == COIN, entered == LAVA
        reward = 1.0 - 0.9 * self._steps / self.family.horizon if solved else 0.0
        info = {"diverged": False, "reward_goal": reward,
                "outcome_catastrophe": catastrophe, "outcome_solved": solved}
        return self._observe(), reward, solved or catastrophe, False, info

    def _observe(self) -> np.ndarray:
        x, y, vx, vy, airborne = self._state
        planes = np.zeros((2 * VIEW_X + 1, 2 * VIEW_Y + 1, len(PLANES)))
        for i in range(2 * VIEW_X + 1):
            for j in range(2 * VIEW_Y + 1):
                cell = kind(self._level.cells, x + i - VIEW_X, y + j - VIEW_Y)
                planes[i, j] = cell == PLANES
        return np.concatenate([planes.reshape(-1), [vx, vy / JUMP_SPEED, airborne]])


class PlanOracle:
    """lava-jump's oracle: each level's shortest plan (`shortest_plan`), played from the
    start. The levels are deterministic, so counting the steps of each episode says
    where the agent is."""

    def __init__(self, length: int) -> None:
        self.length = length

    def start(self, task: dict[str, np.ndarray]) -> PlanRun:
        """Act on these levels, from their first observation on."""
        return PlanRun([plan(self.length, bool(hard), int(seed))
                        for hard, seed in zip(task["hard"], task["level"], strict=True)])


class PlanRun:
    """The oracle acting on N levels: each level's plan and the steps taken of it."""

    def __init__(self, plans: list[tuple[int, ...]]) -> None:
        self.plans = plans
        self.steps_N = np.zeros(len(plans), dtype=np.int64)

    def __call__(self, obs_NO: np.ndarray, task: dict[str, np.ndarray]) -> np.ndarray:
        """The next action of each plan (0, stay, past its end)."""
        action_N = np.array([p[t] if t < len(p) else 0
                             for p, t in zip(self.plans, self.steps_N, strict=True)])
        self.steps_N += 1
        return action_N

    def ended(self, ended_N: np.ndarray) -> None:
        """Episodes that ended start again from the start of their plan."""
        self.steps_N[np.asarray(ended_N, dtype=bool)] = 0


def lava_jump(*, length: int = LENGTH, train_levels: int = TRAIN_LEVELS) -> TaskFamily:
    """Options: length (the levels' columns, in [24, 500]; the horizon is 3 x length),
    train_levels (>= 1)."""
    if isinstance(length, bool) or not isinstance(length, int) \
            or not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"family 'lava-jump': option length must be an integer in "
                         f"[{MIN_LENGTH}, {MAX_LENGTH}], got {length!r}")
    check_train_levels("lava-jump", train_levels)
    refuse_unless_fits(f"family 'lava-jump' with option length={length} and option "
                       f"train_levels={train_levels}",
                       train_levels * (LEVEL_BYTES + length * HEIGHT))
    horizon = HORIZON_PER_COLUMN * length
    seeds = first_distinct_seeds(lambda seed: level(length, False, seed), train_levels,
                                 family="lava-jump", generator=f"length {length}")

    def levels_of(task: dict[str, np.ndarray]) -> list[Level]:
        return [level(length, bool(hard), int(seed))
                for hard, seed in zip(task["hard"], task["level"], strict=True)]

    def make_vec(family: TaskFamily, tasks: Any, *, seed: int | None = None,
                 horizon: int | None = None, autoreset_mode: str = "next-step"
                 ) -> BatchedEnv:
        horizon = family.horizon if horizon is None else horizon
        return BatchedEnv(family=family, simulator=LavaJumpSim(len(tasks), levels_of, horizon),
                          tasks=tasks, horizon=horizon, autoreset_mode=autoreset_mode,
                          seed=seed)

    def make_env(family: TaskFamily, task: Any) -> LavaJumpEnv:
        return LavaJumpEnv(family=family, task=task, length=length)

    return TaskFamily(
        name="lava-jump",
        params=[Param("hard", values=(0, 1), labels=("standard", "hard"),
                      doc="the generator: standard, or wider pits, more of them, higher "
                          "steps"),
                Param("level", 0.0, float(TEST_SEEDS[1]), doc="the generator's seed")],
        splits={"train": product([choice("hard", [0]), choice("level", seeds)]),
                "test-id": product([choice("hard", [0]), box(level=TEST_SEEDS)]),
                "test-ood": product([choice("hard", [1]), box(level=TEST_SEEDS)])},
        horizon=horizon, make_vec=make_vec, make_env=make_env,
        outcomes=("catastrophe", "solved"), oracle=PlanOracle(length),
        default_task={"hard": 0, "level": float(seeds[0])},
        doc=f"run and jump over lava pits to the coin, no steering in the air ({length} "
            f"columns); train: {train_levels} levels; OOD: wider pits, more of them, "
            f"higher steps")
