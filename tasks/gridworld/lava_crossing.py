"""lava-crossing: MiniGrid's LavaCrossing levels, simulated in batches.

A level is a square room with `rivers` lava rivers, each with one crossing, the agent in
the top-left corner and the green goal in the bottom-right one. Each level's layout comes
from MiniGrid's own generator (CrossingEnv) for the level's seed, so level s here is
MiniGrid's LavaCrossing level s; GridSim then steps thousands of them at once.

A task is a level: its `size`, its number of `rivers` and its MiniGrid `level` seed.
Train: the first `train_levels` seeds whose layouts differ (options size, rivers).
Test-id: fresh seeds (from 10^6 up) of the same generator. A small generator repeats
training layouts (9 x 9 with one river has 42, `distinct_layouts`), so the default is
MiniGrid's LavaCrossingS11N5 (37,128 layouts). Test-ood: a larger room with more rivers
(size + 2, rivers + 2: S13N7 by default). Outcomes: `catastrophe` (stepped into lava)
and `solved` (reached the goal). Option `actions`: MiniGrid's 7 (turn left, turn right,
forward, and pickup, drop, toggle and done, which do nothing here), or only its first 3,
as many papers on MiniGrid use: the 4 that do nothing let a greedy policy stand still.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.gridworld.grid import ACTIONS, OBSERVATION_SPACE, GridSim, Level
from tasks.gridworld.levels import check_train_levels, first_distinct_seeds
from tasks.gridworld.oracle import ShortestPathOracle, minigrid_rules
from tasks.regions import Param, box, choice, product
from tasks.simple import TaskEnv, check_choice
from tasks.vector import BatchedEnv

SIZE, RIVERS, TRAIN_LEVELS = 11, 5, 100
ACTION_COUNTS = (ACTIONS, 3)  # all of MiniGrid's, or turn left, turn right, forward
TEST_SEEDS = (10**6, 2**31 - 1)  # test-id seeds: never a training seed


def check_layout_options(size: Any, rivers: Any, where: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 5 or size % 2 == 0:
        raise ValueError(f"family 'lava-crossing': option {where}size must be an odd "
                         f"integer >= 5, got {size!r}")
    if isinstance(rivers, bool) or not isinstance(rivers, int) \
            or not 1 <= rivers <= size - 3:
        raise ValueError(f"family 'lava-crossing': option {where}rivers must be an integer "
                         f"in [1, {size - 3}] for size {size} (rivers run along every "
                         f"other row and column), got {rivers!r}")


@functools.cache
def _minigrid_env(size: int, rivers: int) -> gymnasium.Env:
    from minigrid.core.world_object import Lava
    from minigrid.envs.crossing import CrossingEnv

    return CrossingEnv(size=size, num_crossings=rivers, obstacle_type=Lava)


@functools.lru_cache(maxsize=65536)
def level(size: int, rivers: int, seed: int) -> Level:
    """MiniGrid's level `seed` of LavaCrossing with this size and number of rivers."""
    env = _minigrid_env(size, rivers)
    env.reset(seed=seed)
    cells = env.unwrapped.grid.encode()[:, :, 0].copy()
    cells.flags.writeable = False
    start = env.unwrapped.agent_pos
    return Level(cells=cells, start=(int(start[0]), int(start[1])),
                 direction=int(env.unwrapped.agent_dir))


def distinct_layouts(size: int, rivers: int) -> int:
    """How many different levels MiniGrid's generator can make: for every choice of
    river lines and every order of crossing them, the product of the choices of each
    crossing's cell (a river crossed leaving the current room has as many as the room is
    wide)."""
    lines = list(range(2, size - 2, 2))
    total = 0
    for count_v in range(rivers + 1):
        count_h = rivers - count_v
        if count_v > len(lines) or count_h > len(lines):
            continue
        for rivers_v in itertools.combinations(lines, count_v):
            for rivers_h in itertools.combinations(lines, count_h):
                limits_v = [0, *rivers_v, size - 1]
                limits_h = [0, *rivers_h, size - 1]
                for order in set(itertools.permutations("h" * count_v + "v" * count_h)):
                    room_i = room_j = 0
                    ways = 1
                    for step in order:
                        if step == "h":  # cross a vertical river: a row of room room_j
                            ways *= limits_h[room_j + 1] - limits_h[room_j] - 1
                            room_i += 1
                        else:
                            ways *= limits_v[room_i + 1] - limits_v[room_i] - 1
                            room_j += 1
                    total += ways
    return total


def levels_of(task: dict[str, np.ndarray]) -> list[Level]:
    return [level(int(s), int(r), int(seed)) for s, r, seed
            in zip(task["size"], task["rivers"], task["level"], strict=True)]


def action_space(family: TaskFamily) -> spaces.Discrete:
    """The family's actions: MiniGrid's first `actions` (option; all 7 by default)."""
    return spaces.Discrete(family.options.get("actions", ACTIONS))


class LavaCrossingEnv(TaskEnv):
    """The single reference env: MiniGrid's own CrossingEnv, on the task's level, with
    max_steps the family's horizon and its `image` flattened as the observation."""

    observation_space = OBSERVATION_SPACE

    def __init__(self, *, family: TaskFamily, task: Any) -> None:
        self.action_space = action_space(family)
        super().__init__(family=family, task=task)

    def first_observation(self) -> np.ndarray:
        from minigrid.core.world_object import Lava
        from minigrid.envs.crossing import CrossingEnv

        self._env = CrossingEnv(size=int(self.task.size), num_crossings=int(self.task.rivers),
                                obstacle_type=Lava, max_steps=self.family.horizon)
        obs, _ = self._env.reset(seed=int(self.task.level))
        return obs["image"].reshape(-1).astype(np.float64)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        env = self._env
        front = env.grid.get(*env.front_pos)
        forward = check_choice(action, int(self.action_space.n), "action") == \
            env.actions.forward
        obs, reward, terminated, truncated, _ = env.step(action)
        info = {"diverged": False, "reward_goal": float(reward),
                "outcome_catastrophe": bool(forward and front is not None
                                            and front.type == "lava"),
                "outcome_solved": bool(forward and front is not None
                                       and front.type == "goal")}
        return (obs["image"].reshape(-1).astype(np.float64), float(reward), terminated,
                truncated, info)


def make_vec(family: TaskFamily, tasks: Any, *, seed: int | None = None,
             horizon: int | None = None, autoreset_mode: str = "next-step") -> BatchedEnv:
    horizon = family.horizon if horizon is None else horizon
    simulator = GridSim(len(tasks), levels_of, horizon)
    simulator.single_action_space = action_space(family)
    return BatchedEnv(family=family, simulator=simulator, tasks=tasks, horizon=horizon,
                      autoreset_mode=autoreset_mode, seed=seed)


def make_env(family: TaskFamily, task: Any) -> LavaCrossingEnv:
    return LavaCrossingEnv(family=family, task=task)


def lava_crossing(*, size: int = SIZE, rivers: int = RIVERS,
                  train_levels: int = TRAIN_LEVELS, actions: int = ACTIONS) -> TaskFamily:
    """Options: size (odd, >= 5), rivers (1 .. size - 3), train_levels (>= 1, at most
    the generator's distinct levels), actions (7 or 3)."""
    check_layout_options(size, rivers, "")
    if isinstance(actions, bool) or actions not in ACTION_COUNTS:
        raise ValueError(f"family 'lava-crossing': option actions must be one of "
                         f"{list(ACTION_COUNTS)}, got {actions!r}")
    check_train_levels("lava-crossing", train_levels)
    ood_size, ood_rivers = size + 2, min(rivers + 2, size - 1)
    seeds = first_distinct_seeds(lambda seed: level(size, rivers, seed), train_levels,
                                 family="lava-crossing", generator=f"size {size} and "
                                 f"{rivers} river(s)", available=distinct_layouts(size, rivers))
    same = product([choice("size", [size]), choice("rivers", [rivers])])
    return TaskFamily(
        name="lava-crossing",
        params=[Param("size", values=(size, ood_size), doc="the room's width and height"),
                Param("rivers", values=tuple(sorted({rivers, ood_rivers})),
                      doc="lava rivers, one crossing each"),
                Param("level", 0.0, float(TEST_SEEDS[1]), doc="MiniGrid's level seed")],
        splits={"train": product([same, choice("level", seeds)]),
                "test-id": product([same, box(level=TEST_SEEDS)]),
                "test-ood": product([choice("size", [ood_size]),
                                     choice("rivers", [ood_rivers]),
                                     box(level=TEST_SEEDS)])},
        horizon=4 * size * size, make_vec=make_vec, make_env=make_env,
        outcomes=("catastrophe", "solved"),
        oracle=ShortestPathOracle(lambda n: GridSim(n, levels_of, 4 * size * size),
                                  minigrid_rules),
        default_task={"size": size, "rivers": rivers, "level": float(seeds[0])},
        doc=f"MiniGrid's LavaCrossing S{size}N{rivers}: cross lava rivers to the goal; "
            f"train: {train_levels} levels; OOD: S{ood_size}N{ood_rivers}")
