"""lava-jump: the physics by hand (drawn levels), the batched env against the scalar
reference env, generated levels, splits, the shortest-plan oracle, catastrophes decided
steps ahead (and lava-world's on the fatal step) and options. The family is built by its
factory, so these tests do not depend on the catalog."""

import functools
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tasks
from tasks.gridworld.grid import EMPTY, GOAL, LAVA, WALL, Level
from tasks.gridworld.lava_jump import (
    AIRBORNE,
    COIN,
    END_RUN,
    GROUND,
    HEIGHT,
    HIGHEST,
    LOWEST,
    START_RUN,
    VIEW_X,
    VIEW_Y,
    LavaJumpSim,
    decision_lead,
    fly,
    lava_jump,
    level,
    shortest_plan,
)

STAY, LEFT, RIGHT, UP, JUMP_LEFT, JUMP_RIGHT = range(6)
SYMBOLS = {".": EMPTY, "#": GROUND, "~": LAVA, "$": COIN}


@functools.cache
def family(**options):
    """The registered family (one built beside the catalog's has another task type)."""
    return tasks.get("lava-jump", **options)


def drawn(*rows: str) -> np.ndarray:
    """cells[x, y] of a level drawn top row first (# ground, ~ lava, $ coin, . empty);
    rows above the drawing, up to HEIGHT, are empty."""
    cells = np.full((len(rows[0]), HEIGHT), EMPTY, dtype=np.uint8)
    for y, row in enumerate(reversed(rows)):
        cells[:, y] = [SYMBOLS[c] for c in row]
    return cells


def trajectory(cells: np.ndarray, start: tuple[int, int], actions: list[int]) -> list[tuple]:
    """(x, y, airborne, kind of the cell entered) after each action, by `fly` and by the
    batched simulator, which must agree; stops at lava or the coin."""
    sim = LavaJumpSim(1, lambda task: [Level(cells=cells, start=start, direction=0)], 100)
    sim.set_tasks({})
    sim.reset(np.arange(1), [])
    state, steps = (*start, 0, 0, False), []
    for action in actions:
        state, entered = fly(cells, state, action)
        out = sim.step(np.array([action]), np.ones(1, dtype=bool))
        batched = (int(sim.x_N[0]) - sim.PAD, int(sim.y_N[0]) - sim.PAD,
                   int(sim.vx_N[0]), int(sim.vy_N[0]), bool(sim.airborne_N[0]))
        assert batched == state
        assert out.outcomes["catastrophe"][0] == (entered == LAVA)
        assert out.outcomes["solved"][0] == (entered == COIN)
        steps.append((state[0], state[1], state[4], entered))
        if entered in (LAVA, COIN):
            break
    return steps


FLAT = drawn("." * 16, "#" * 16, "#" * 16)  # standing on row 2


def positions(steps: list[tuple]) -> list[tuple[int, int]]:
    return [(x, y) for x, y, _, _ in steps]


def test_a_jump_flies_five_steps_and_five_cells_in_an_arc():
    steps = trajectory(FLAT, (1, 2), [JUMP_RIGHT] + [STAY] * 5)
    assert positions(steps) == [(2, 4), (3, 5), (4, 5), (5, 4), (6, 2), (6, 2)]
    assert [air for _, _, air, _ in steps] == [True, True, True, True, False, False]
    assert positions(trajectory(FLAT, (1, 2), [UP] + [STAY] * 4)) == [
        (1, 4), (1, 5), (1, 5), (1, 4), (1, 2)]
    assert positions(trajectory(FLAT, (8, 2), [JUMP_LEFT] * 5)) == [
        (7, 4), (6, 5), (5, 5), (4, 4), (3, 2)]
    assert positions(trajectory(FLAT, (1, 2), [RIGHT, RIGHT, LEFT, STAY])) == [
        (2, 2), (3, 2), (2, 2), (2, 2)]


def test_no_action_steers_in_the_air():
    """During a flight every action gives the same trajectory; on landing they differ."""
    for jump in (UP, JUMP_LEFT, JUMP_RIGHT):
        flights = [trajectory(FLAT, (7, 2), [jump] + [action] * 4) for action in range(6)]
        assert all(flight == flights[0] for flight in flights)
        assert [air for _, _, air, _ in flights[0]] == [True] * 4 + [False]
        landed = {trajectory(FLAT, (7, 2), [jump] + [STAY] * 4 + [a])[-1] for a in range(6)}
        assert len(landed) == 6


def test_walls_stop_the_agent_and_ceilings_its_rise():
    wall = drawn("...#....", "...#....", "...#....", "########", "########")
    assert positions(trajectory(wall, (1, 2), [RIGHT, RIGHT, RIGHT])) == [(2, 2)] * 3
    # jumping into the wall: no more sideways motion, straight up and down
    assert positions(trajectory(wall, (2, 2), [JUMP_RIGHT] + [STAY] * 4)) == [
        (2, 4), (2, 5), (2, 5), (2, 4), (2, 2)]
    low = drawn("..###...", "........", "########", "########")  # a ceiling on row 3
    steps = trajectory(low, (1, 2), [JUMP_RIGHT, UP])
    assert steps == [(2, 2, False, EMPTY), (2, 2, False, EMPTY)]  # bumped at once: landed
    high = drawn("..###...", "........", "........", "########", "########")  # row 4
    # the rise stops under it; the sideways motion goes on
    assert trajectory(high, (1, 2), [JUMP_RIGHT, STAY]) == [
        (2, 3, True, EMPTY), (3, 2, False, EMPTY)]
    # a step up of 3 rows: climbed only by jumping from 3 or 4 cells before it
    step = drawn("......####", "......####", "......####", "##########", "##########")
    for start, lands in ((2, (6, 5)), (3, (6, 5)), (4, (5, 2)), (1, (5, 2))):
        assert trajectory(step, (start, 2), [JUMP_RIGHT] + [STAY] * 5)[-1][:2] == lands


def test_running_off_an_edge_falls_with_its_speed_and_lands():
    ledge = drawn("####........", "####........", "####........", "############",
                  "############")
    steps = trajectory(ledge, (3, 5), [RIGHT, JUMP_LEFT, JUMP_LEFT, STAY])
    assert steps == [(4, 5, True, EMPTY), (5, 4, True, EMPTY), (6, 2, False, EMPTY),
                     (6, 2, False, EMPTY)]


def test_lava_ends_in_catastrophe_and_the_coin_in_solved():
    pit = drawn("..........", "####...###", "####~~~###")
    # (in the lava, on the level's floor: landed)
    assert trajectory(pit, (3, 2), [RIGHT, STAY, STAY, STAY]) == [
        (4, 2, True, EMPTY), (5, 1, True, EMPTY), (6, 0, False, LAVA)]
    assert trajectory(pit, (3, 2), [JUMP_RIGHT] * 5)[-1] == (8, 2, False, EMPTY)
    end = drawn(".......$", "########", "########")
    assert trajectory(end, (4, 2), [RIGHT, RIGHT, RIGHT, STAY])[-1] == (7, 2, False, COIN)
    horizon = family(train_levels=3).horizon
    task = family(train_levels=3).default_task
    env = family(train_levels=3).make_env(task)
    env.reset()
    plan = shortest_plan(level(48, False, int(task.level)).cells,
                         level(48, False, int(task.level)).start)
    for t, action in enumerate(plan, start=1):
        _, reward, terminated, truncated, info = env.step(action)
        assert terminated == (t == len(plan)) and not truncated
    assert info["outcome_solved"] and not info["outcome_catastrophe"]
    assert reward == info["reward_goal"] == 1 - 0.9 * len(plan) / horizon


@pytest.mark.parametrize("hard", [False, True])
def test_generated_levels_are_solvable_with_the_coin_at_the_end(hard):
    for seed in [*range(60), 10**6, 2**31 - 2]:
        found = level(48, hard, seed)
        cells = found.cells
        assert cells.shape == (48, HEIGHT) and not cells.flags.writeable
        assert (cells[:, 1:] != LAVA).all()  # lava only at the bottom of pits
        height = (cells == GROUND).sum(axis=1)  # the ground's, outside pits and platforms
        solid = cells[:, 0] == GROUND  # else a pit: lava on row 0
        assert (cells[~solid, 0] == LAVA).all()
        tops = [int(np.flatnonzero(cells[x] != GROUND)[0]) for x in np.flatnonzero(solid)]
        assert (height[solid] == tops).all()  # ground from row 0 up, nothing floating
        assert min(tops) >= LOWEST and max(tops) <= HIGHEST
        assert (height[:START_RUN] == height[0]).all() and solid[:START_RUN].all()
        assert found.start == (1, height[0])
        assert solid[-END_RUN:].all() and (height[-END_RUN:] == height[-1]).all()
        assert np.argwhere(cells == COIN).tolist() == [[47, height[-1]]]
        plan = shortest_plan(cells, found.start)
        assert plan is not None and len(plan) >= 48 - 2  # at most one column a step
        np.testing.assert_array_equal(cells, level.__wrapped__(48, hard, seed).cells)


@pytest.mark.parametrize("split", ["train", "test-ood"])
def test_batched_levels_step_as_the_reference_env(split):
    jump_family = family(train_levels=20)
    level_tasks = jump_family.sample(10, split, np.random.default_rng(3))
    env = jump_family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    references = [jump_family.make_env(task) for task in level_tasks]
    obs, _ = env.reset()
    for n, reference in enumerate(references):
        np.testing.assert_array_equal(obs[n], reference.reset()[0])
    rng = np.random.default_rng(4)
    counts = {"catastrophe": 0, "solved": 0, "truncated": 0}
    # random walks of three kinds: uniform, mostly to the right (they get far) and
    # mostly staying (they last to the horizon)
    policies = np.array([[1 / 6] * 6, [0.05, 0.1, 0.4, 0.05, 0.05, 0.35],
                         [0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    for _ in range(jump_family.horizon + 60):
        actions = np.array([rng.choice(6, p=policies[n % 3]) for n in range(10)])
        obs, reward, terminated, truncated, info = env.step(actions)
        for n, reference in enumerate(references):
            want_obs, want_reward, want_terminated, want_truncated, want_info = \
                reference.step(int(actions[n]))
            np.testing.assert_array_equal(obs[n], want_obs)
            assert (reward[n], terminated[n], truncated[n]) == (
                want_reward, want_terminated, want_truncated)
            assert info["reward_goal"][n] == want_info["reward_goal"]
            for name in ("catastrophe", "solved"):
                assert info[f"outcome_{name}"][n] == want_info[f"outcome_{name}"]
                counts[name] += int(want_info[f"outcome_{name}"])
            counts["truncated"] += int(want_truncated)
        done = terminated | truncated
        if done.any():
            obs, _ = env.reset(options={"reset_mask": done})
            for n in np.flatnonzero(done):
                np.testing.assert_array_equal(obs[n], references[n].reset()[0])
    assert counts["catastrophe"] > 0 and counts["truncated"] > 0


def test_the_observation_is_the_view_around_the_agent_and_its_motion():
    jump_family = family(train_levels=3)
    task = jump_family.default_task
    found = level(48, False, int(task.level))
    env = jump_family.make_env(task)
    obs, _ = env.reset()
    view = obs[:AIRBORNE - 2].reshape(2 * VIEW_X + 1, 2 * VIEW_Y + 1, 3)
    assert obs.shape == ((2 * VIEW_X + 1) * (2 * VIEW_Y + 1) * 3 + 3,)
    x, y = found.start
    for i in range(2 * VIEW_X + 1):
        for j in range(2 * VIEW_Y + 1):
            cx, cy = x + i - VIEW_X, y + j - VIEW_Y
            inside = 0 <= cx < 48 and 0 <= cy < HEIGHT
            cell = found.cells[cx, cy] if inside else (EMPTY if cy >= HEIGHT else GROUND)
            assert list(view[i, j]) == [cell == GROUND, cell == LAVA, cell == COIN]
    assert view[VIEW_X, VIEW_Y].sum() == 0 and view[VIEW_X, VIEW_Y - 1, 0] == 1
    assert list(obs[-3:]) == [0, 0, 0]
    obs, *_ = env.step(JUMP_RIGHT)
    assert list(obs[-3:]) == [1, 0.5, 1]  # vx 1, vy 1 after gravity, airborne
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_training_levels_are_distinct_finite_and_disjoint_from_the_test_seeds():
    jump_family = family(train_levels=42)
    train = jump_family.sample(600, "train", np.random.default_rng(0))
    seeds = {int(t.level) for t in train}
    assert len(seeds) == 42 and {t.hard for t in train} == {0}
    assert len({level(48, False, seed).cells.tobytes() for seed in seeds}) == 42
    test = jump_family.sample(200, "test-id", np.random.default_rng(0))
    assert {t.hard for t in test} == {0} and all(t.level >= 10**6 for t in test)
    assert not any(jump_family.splits["train"].contains({"hard": t.hard, "level": t.level})
                   for t in test)
    ood = jump_family.sample(50, "test-ood", np.random.default_rng(0))
    assert {t.hard for t in ood} == {1}
    # harder: wider pits, more of them, higher steps
    standard = [level(48, False, int(t.level)).cells for t in test[:50]]
    hard = [level(48, True, int(t.level)).cells for t in ood]
    assert max(pit_widths(hard)) == 4 > max(pit_widths(standard)) == 3
    lava_runs = [(cells[:-1, 0] != LAVA) & (cells[1:, 0] == LAVA) for cells in standard]
    hard_lava_runs = [(cells[:-1, 0] != LAVA) & (cells[1:, 0] == LAVA) for cells in hard]
    assert np.sum(hard_lava_runs) > 1.3 * np.sum(lava_runs)  # pits (a platform's too)
    assert max(step_heights(hard)) == 3 > max(step_heights(standard)) == 2


def pit_widths(levels: list[np.ndarray]) -> list[int]:
    """The widths of runs of lava cells that no platform splits (a jump's gaps)."""
    widths = []
    for cells in levels:
        gap = (cells[:, 0] == LAVA) & ~(cells == GROUND).any(axis=1)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], gap.astype(int), [0]])))
        widths += list(edges[1::2] - edges[::2])
    return widths


def step_heights(levels: list[np.ndarray]) -> list[int]:
    """Changes of the ground's height between neighbouring solid columns."""
    changes = []
    for cells in levels:
        solid = np.flatnonzero(cells[:, 0] == GROUND)
        tops = (cells[solid] == GROUND).sum(axis=1)
        changes += list(np.abs(np.diff(tops))[np.diff(solid) == 1])
    return changes


@pytest.mark.parametrize("split", ["train", "test-id", "test-ood"])
def test_the_oracle_solves_every_level_along_its_shortest_plan(split):
    jump_family = family(train_levels=30)
    level_tasks = jump_family.sample(30, split, np.random.default_rng(5))
    arrays = jump_family.task_arrays(level_tasks)
    lengths = [len(shortest_plan(level(48, bool(t.hard), int(t.level)).cells,
                                 level(48, bool(t.hard), int(t.level)).start))
               for t in level_tasks]
    env = jump_family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    run = jump_family.oracle.start(arrays)
    obs, _ = env.reset()
    steps_N, solved_N = np.zeros(len(level_tasks), dtype=np.int64), np.zeros(len(level_tasks))
    # a new episode follows each one solved, reset by hand (as the collector does)
    for _ in range(2 * max(lengths)):
        obs, reward, terminated, truncated, info = env.step(run(obs, arrays))
        steps_N += 1
        assert not info["outcome_catastrophe"].any() and not truncated.any()
        np.testing.assert_array_equal(terminated, info["outcome_solved"])
        np.testing.assert_array_equal(steps_N[terminated], np.array(lengths)[terminated])
        np.testing.assert_array_equal(reward[terminated],
                                      1 - 0.9 * steps_N[terminated] / jump_family.horizon)
        run.ended(terminated)
        solved_N += terminated
        steps_N[terminated] = 0
        if terminated.any():
            obs, _ = env.reset(options={"reset_mask": terminated})
    assert (solved_N >= 2).all()


def test_the_oracle_through_the_harness_solves_and_never_burns():
    from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
    from fewshot.references import oracle_learner

    jump_family = family(train_levels=5)
    settings = EvaluationSettings(episodes=1, tasks=6, trials=1, seed=0)
    records = evaluate(oracle_learner(jump_family, name="oracle"), jump_family,
                       freeze_tasks(jump_family, settings), settings, run="test", run_seed=0)
    assert records["outcome.solved"].all() and not records["outcome.catastrophe"].any()
    assert (records["return"] > 0.6).all()


def test_the_length_option_sets_the_levels_and_the_horizon():
    short = family(length=24, train_levels=4)
    assert short.horizon == 72 and dict(short.options) == {"length": 24, "train_levels": 4}
    for task in short.finite_tasks("train") + short.sample(4, "test-ood",
                                                           np.random.default_rng(0)):
        assert level(24, bool(task.hard), int(task.level)).cells.shape == (24, HEIGHT)
    run = short.oracle.start(short.task_arrays(short.finite_tasks("train")))
    env = short.make_vec(short.finite_tasks("train"), autoreset_mode="disabled")
    obs, _ = env.reset()
    solved_N = np.zeros(env.num_envs, dtype=bool)
    for _ in range(short.horizon):
        obs, _, _, _, info = env.step(run(obs, {}))
        assert not info["outcome_catastrophe"].any()
        solved_N |= info["outcome_solved"]
    assert solved_N.all()


def random_episodes(env, steps: int, rng: np.random.Generator, record) -> list:
    """Catastrophes under uniformly random actions, autoreset disabled: for each, what
    `record(env, obs)` gave before each action of its episode, and the actions."""
    obs, _ = env.reset()
    notes = [[] for _ in range(env.num_envs)]
    actions = [[] for _ in range(env.num_envs)]
    found = []
    for _ in range(steps):
        action = rng.integers(env.single_action_space.n, size=env.num_envs)
        for n in range(env.num_envs):
            notes[n].append(record(env, obs, n))
            actions[n].append(int(action[n]))
        obs, _, terminated, truncated, info = env.step(action)
        for n in np.flatnonzero(info["outcome_catastrophe"]):
            found.append((n, notes[n], actions[n]))
        for n in np.flatnonzero(terminated | truncated):
            notes[n], actions[n] = [], []
        if (terminated | truncated).any():
            obs, _ = env.reset(options={"reset_mask": terminated | truncated})
    return found


def test_catastrophes_are_decided_steps_before_the_lava():
    """Uniformly random actions on the 100 training levels: every catastrophe was decided
    at least 3 steps before it, by construction (the ground is at least 2 rows above the
    lava, and a fall starts only on the step after the agent leaves the ground), and most
    4 or more (measured: 113 catastrophes, 81% of them, median 6 steps). Replayed:
    staying put at the decision saves the agent; any actions after it end in the lava at
    the same step."""
    jump_family = family(train_levels=100)
    level_tasks = jump_family.finite_tasks("train")
    env = jump_family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    found = random_episodes(env, jump_family.horizon, np.random.default_rng(6),
                            lambda env, obs, n: bool(obs[n, AIRBORNE]))
    leads = np.array([decision_lead(airborne) for _, airborne, _ in found])
    assert len(leads) > 80
    assert (leads >= 3).all() and (leads >= 4).mean() >= 0.5
    rng = np.random.default_rng(7)
    for n, airborne, actions in found[:25]:
        task = level_tasks[n]
        cells = level(48, False, int(task.level)).cells
        state = (*level(48, False, int(task.level)).start, 0, 0, False)
        decided = len(actions) - decision_lead(airborne)  # index of the decision
        for action in actions[:decided]:
            state, _ = fly(cells, state, action)
        assert not state[4]
        after, entered = fly(cells, state, STAY)
        assert entered == EMPTY and not after[4]
        state, entered = fly(cells, state, actions[decided])
        for _ in range(len(actions) - decided - 1):  # airborne: any actions at all
            assert state[4] and entered == EMPTY
            state, entered = fly(cells, state, int(rng.integers(6)))
        assert entered == LAVA


def test_lava_world_catastrophes_are_decided_on_the_fatal_step():
    """In lava-world the agent chooses every step, and at every catastrophe another move
    was safe (into a wall, the goal or a free cell): decided 1 step before, where
    decision_lead's flags are all on the ground."""
    world = tasks.get("lava-world", train_levels=10)
    level_tasks = world.sample(100, "test-id", np.random.default_rng(0))
    env = world.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    found = random_episodes(env, 60, np.random.default_rng(6),
                            lambda env, obs, n: tuple(int(v) for v in env.sim.pos_N2[n]))
    assert len(found) > 50
    for n, cells_visited, actions in found:
        cells = env.sim.cells_NXY[n]
        x, y = cells_visited[-1]  # where the fatal move was made
        neighbours = [cells[x + dx, y + dy] for dx, dy in ((0, -1), (1, 0), (0, 1), (-1, 0))]
        assert cells[x + (0, 1, 0, -1)[actions[-1]], y + (-1, 0, 1, 0)[actions[-1]]] == LAVA
        assert any(cell in (EMPTY, WALL, GOAL) for cell in neighbours)
        assert decision_lead([False] * len(actions)) == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"length": 23}, r"option length must be an integer in \[24, 500\], got 23"),
    ({"length": 501}, r"option length must be an integer in \[24, 500\], got 501"),
    ({"length": 48.0}, r"option length must be an integer in \[24, 500\], got 48.0"),
    ({"length": True}, r"option length must be an integer in \[24, 500\], got True"),
    ({"train_levels": 0}, "option train_levels must be an integer >= 1, got 0"),
    ({"train_levels": "3"}, "option train_levels must be an integer >= 1, got '3'"),
    ({"train_levels": 10**15}, "with option length=48 and option train_levels="
                               "1000000000000000 needs about"),
])
def test_bad_options_fail_naming_the_option(options, message):
    with pytest.raises(ValueError, match=f"family 'lava-jump'.*{message}"):
        lava_jump(**options)
