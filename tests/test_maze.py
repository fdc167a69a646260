"""maze: perfect mazes, the batched env against the scalar reference env, splits, the
shortest-path oracle, the looping outcome and options. The family is built by its
factory, so these tests do not depend on the catalog."""

import functools
import warnings
from collections import deque

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tasks
from tasks.gridworld.grid import GOAL, WALL
from tasks.gridworld.maze import LOOP_VISITS, level, maze

STEPS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # up, right, down, left: actions 0-3


@functools.cache
def family(**options):
    return tasks.get("maze", **options)


def bfs(cells: np.ndarray, start: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Moves from start to every free cell it reaches, over 4-neighbours."""
    distance, frontier = {start: 0}, deque([start])
    while frontier:
        x, y = frontier.popleft()
        for dx, dy in STEPS:
            cell = (x + dx, y + dy)
            if cell not in distance and cells[cell] != WALL:
                distance[cell] = distance[x, y] + 1
                frontier.append(cell)
    return distance


@pytest.mark.parametrize("size", [5, 7, 9, 11, 13, 15])
def test_every_maze_is_perfect_with_the_goal_in_its_far_half(size):
    for seed in [*range(40), 10**6, 2**31 - 2]:
        maze_level = level(size, seed)
        cells = maze_level.cells
        free = cells != WALL
        assert cells.shape == (size, size)
        assert not free[[0, -1], :].any() and not free[:, [0, -1]].any()
        assert maze_level.start == (1, 1) and free[1, 1]
        assert (cells == GOAL).sum() == 1
        distance = bfs(cells, maze_level.start)
        assert len(distance) == free.sum()  # every free cell reachable
        adjacencies = (free[1:, :] & free[:-1, :]).sum() + (free[:, 1:] & free[:, :-1]).sum()
        assert adjacencies == free.sum() - 1  # connected with no cycle: a tree
        assert free.sum() == 2 * ((size - 1) // 2) ** 2 - 1  # every room carved
        goal = tuple(int(v) for v in np.argwhere(cells == GOAL)[0])
        assert 2 * distance[goal] >= max(distance.values())
        np.testing.assert_array_equal(cells, level.__wrapped__(size, seed).cells)


@pytest.mark.parametrize("split", ["train", "test-ood"])
def test_batched_levels_step_as_the_reference_env(split):
    maze_family = family(train_levels=20)
    level_tasks = maze_family.sample(12, split, np.random.default_rng(3))
    env = maze_family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    references = [maze_family.make_env(task) for task in level_tasks]
    obs, _ = env.reset()
    for n, reference in enumerate(references):
        np.testing.assert_array_equal(obs[n], reference.reset()[0])
    rng = np.random.default_rng(4)
    counts = {"solved": 0, "looping": 0, "truncated": 0}
    for _ in range(maze_family.horizon + 60):
        actions = rng.integers(4, size=len(level_tasks))
        obs, reward, terminated, truncated, info = env.step(actions)
        for n, reference in enumerate(references):
            want_obs, want_reward, want_terminated, want_truncated, want_info = \
                reference.step(int(actions[n]))
            np.testing.assert_array_equal(obs[n], want_obs)
            assert (reward[n], terminated[n], truncated[n]) == (
                want_reward, want_terminated, want_truncated)
            for name in ("solved", "looping"):
                assert info[f"outcome_{name}"][n] == want_info[f"outcome_{name}"]
                counts[name] += int(want_info[f"outcome_{name}"])
            counts["truncated"] += int(want_truncated)
        done = terminated | truncated
        if done.any():  # a new episode: entries into cells count from zero again
            obs, _ = env.reset(options={"reset_mask": done})
            for n in np.flatnonzero(done):
                np.testing.assert_array_equal(obs[n], references[n].reset()[0])
    assert counts["looping"] > 0 and counts["truncated"] > 0
    assert counts["solved"] > 0 or split == "test-ood"  # random walks rarely solve those


def test_the_observation_is_the_padded_map_with_the_agent():
    maze_family = family()
    task = maze_family.sample(1, "train", np.random.default_rng(0))[0]
    assert task.size < 15
    cells = level(task.size, int(task.level)).cells
    env = maze_family.make_env(task)
    obs, _ = env.reset()
    planes = obs.reshape(15, 15, 3)  # padded to the largest test-ood size
    padded = np.full((15, 15), WALL)
    padded[:task.size, :task.size] = cells
    np.testing.assert_array_equal(planes[..., 0], padded == WALL)
    np.testing.assert_array_equal(planes[..., 1], padded == GOAL)
    assert planes[..., 2].sum() == 1 and planes[1, 1, 2] == 1
    move = next(a for a, (dx, dy) in enumerate(STEPS) if cells[1 + dx, 1 + dy] != WALL)
    obs, *_ = env.step(move)
    agent = obs.reshape(15, 15, 3)[..., 2]
    assert agent.sum() == 1 and agent[1 + STEPS[move][0], 1 + STEPS[move][1]] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_training_levels_are_distinct_finite_and_disjoint_from_the_test_seeds():
    maze_family = family(train_levels=42)
    train = maze_family.sample(600, "train", np.random.default_rng(0))
    pairs = {(t.size, int(t.level)) for t in train}
    assert len(pairs) == 42  # a finite set, every one of them drawn
    assert len({level(size, seed).cells.tobytes() for size, seed in pairs}) == 42
    assert {size for size, _ in pairs} == {7, 9, 11}
    seeds = {seed for _, seed in pairs}
    test = maze_family.sample(200, "test-id", np.random.default_rng(0))
    assert {t.size for t in test} == {7, 9, 11}
    assert all(t.level >= 10**6 for t in test) and not {int(t.level) for t in test} & seeds
    assert not any(maze_family.splits["train"].contains({"size": t.size, "level": t.level})
                   for t in test)
    ood = maze_family.sample(50, "test-ood", np.random.default_rng(0))
    assert {t.size for t in ood} == {13, 15}
    # 5 x 5 mazes repeat: the training levels skip the seeds whose level came before
    small = family(min_size=5, max_size=5, train_levels=10)
    small_seeds = sorted({int(t.level) for t in small.sample(300, "train",
                                                             np.random.default_rng(0))})
    assert len(small_seeds) == 10 and small_seeds[-1] > 9
    assert len({level(5, seed).cells.tobytes() for seed in small_seeds}) == 10


@pytest.mark.parametrize("split", ["train", "test-id", "test-ood"])
def test_the_oracle_solves_every_level_along_a_shortest_path(split):
    maze_family = family(train_levels=20)
    level_tasks = maze_family.sample(16, split, np.random.default_rng(5))
    shortest = []
    for task in level_tasks:
        cells = level(task.size, int(task.level)).cells
        goal = tuple(int(v) for v in np.argwhere(cells == GOAL)[0])
        shortest.append(bfs(cells, (1, 1))[goal])
    arrays = maze_family.task_arrays(level_tasks)
    run = maze_family.oracle.start(arrays)
    env = maze_family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    obs, _ = env.reset()
    solved_at = np.zeros(len(level_tasks), dtype=np.int64)  # 0: not yet
    for t in range(1, max(shortest) + 1):
        obs, reward, terminated, truncated, info = env.step(run(obs, arrays))
        going = solved_at == 0  # levels solved already are not looked at again
        assert not (info["outcome_looping"] & going).any() and not truncated.any()
        np.testing.assert_array_equal(terminated, info["outcome_solved"])
        for n in np.flatnonzero(terminated & going):
            solved_at[n] = t
            assert reward[n] == 1 - 0.9 * t / maze_family.horizon
    np.testing.assert_array_equal(solved_at, shortest)


def test_walking_back_and_forth_or_bumping_a_wall_is_looping_once_per_episode():
    maze_family = family()
    task = maze_family.default_task
    cells = level(task.size, int(task.level)).cells
    there = next(a for a, (dx, dy) in enumerate(STEPS)
                 if cells[1 + dx, 1 + dy] not in (WALL, GOAL))
    back = (there + 2) % 4
    env = maze_family.make_vec([task, task], autoreset_mode="disabled")
    reference = maze_family.make_env(task)
    # env 0 walks between the start and a neighbour (its (LOOP_VISITS + 1)-th step into
    # the neighbour is step 2 LOOP_VISITS + 1); env 1 only bumps the wall above the
    # start, staying there: the (LOOP_VISITS + 1)-th step ending in the start
    expected = [t == 2 * LOOP_VISITS + 1 for t in range(1, 4 * LOOP_VISITS + 1)]
    expected_bumps = [t == LOOP_VISITS + 1 for t in range(1, 4 * LOOP_VISITS + 1)]
    for _ in range(2):  # in the next episode the entries count from zero again
        env.reset()
        reference.reset()
        flags, bumps, reference_flags, reference_bumps = [], [], [], []
        bumper = maze_family.make_env(task)
        bumper.reset()
        for t in range(len(expected)):
            move = there if t % 2 == 0 else back
            *_, info = env.step(np.array([move, 0]))
            flags.append(bool(info["outcome_looping"][0]))
            bumps.append(bool(info["outcome_looping"][1]))
            reference_flags.append(reference.step(move)[4]["outcome_looping"])
            reference_bumps.append(bumper.step(0)[4]["outcome_looping"])
        assert flags == expected == reference_flags
        assert bumps == expected_bumps == reference_bumps


@pytest.mark.parametrize(("options", "message"), [
    ({"min_size": 4}, "option min_size must be an odd integer >= 5, got 4"),
    ({"min_size": 8}, "option min_size must be an odd integer >= 5, got 8"),
    ({"min_size": "7"}, "option min_size must be an odd integer >= 5, got '7'"),
    ({"max_size": 12}, "option max_size must be an odd integer >= 5, got 12"),
    ({"min_size": 9, "max_size": 7},
     "option min_size must be <= option max_size, got min_size=9 and max_size=7"),
    ({"min_size": 13}, "option min_size must be <= option max_size, got min_size=13 and "
                       "max_size=11"),
    ({"train_levels": 0}, "option train_levels must be an integer >= 1, got 0"),
    ({"train_levels": True}, "option train_levels must be an integer >= 1, got True"),
    ({"min_size": 5, "max_size": 5, "train_levels": 40},
     "distinct levels among the first 1800 seeds for sizes 5 to 5; option train_levels "
     "must be at most that, got 40"),
    ({"max_size": 10**15 + 1}, "with option max_size=1000000000000001 and option "
                               "train_levels=200 needs about"),
    ({"train_levels": 10**15}, "with option max_size=11 and option train_levels="
                               "1000000000000000 needs about"),
])
def test_bad_options_fail_naming_the_field(options, message):
    with pytest.raises(ValueError, match=f"family 'maze'.*{message}"):
        maze(**options)  # the factory itself: the catalog checks option types first
