"""Gridworld families: the batched simulator against MiniGrid itself (same level, same
actions: the same egocentric observations, rewards and terminations), splits, outcomes
and options."""

import itertools

import numpy as np
import pytest

import tasks
from tasks.gridworld.grid import FORWARD, LEFT, RIGHT
from tasks.gridworld.lava_crossing import distinct_layouts, level

ACTION_WEIGHTS = np.array([0.2, 0.2, 0.5, 0.025, 0.025, 0.025, 0.025])  # mostly forward


def minigrid_env(task, horizon):
    from minigrid.core.world_object import Lava
    from minigrid.envs.crossing import CrossingEnv

    return CrossingEnv(size=task.size, num_crossings=task.rivers, obstacle_type=Lava,
                       max_steps=horizon)


@pytest.mark.parametrize(("options", "split"), [({}, "train"), ({}, "test-ood"),
                                                ({"size": 9, "rivers": 1}, "test-id")])
def test_the_batched_levels_step_as_minigrid_does(options, split):
    family = tasks.get("lava-crossing", **options, train_levels=20)
    level_tasks = family.sample(16, split, np.random.default_rng(1))
    env = family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    references = [minigrid_env(task, family.horizon) for task in level_tasks]
    obs, _ = env.reset()
    for n, (reference, task) in enumerate(zip(references, level_tasks, strict=True)):
        image, _ = reference.reset(seed=int(task.level))
        np.testing.assert_array_equal(obs[n], image["image"].reshape(-1))
    rng = np.random.default_rng(2)
    done = np.zeros(len(level_tasks), dtype=bool)
    outcomes = {"catastrophe": 0, "solved": 0}
    for _ in range(120):
        actions = rng.choice(7, size=len(level_tasks), p=ACTION_WEIGHTS)
        obs, reward, terminated, truncated, info = env.step(actions)
        for n, reference in enumerate(references):
            if done[n]:
                continue
            image, want_reward, want_terminated, want_truncated, _ = reference.step(
                int(actions[n]))
            np.testing.assert_array_equal(obs[n], image["image"].reshape(-1))
            assert reward[n] == pytest.approx(want_reward, abs=1e-12)
            assert (terminated[n], truncated[n]) == (want_terminated, want_truncated)
            on = reference.grid.get(*reference.agent_pos)
            assert info["outcome_catastrophe"][n] == (on is not None and on.type == "lava")
            assert info["outcome_solved"][n] == (on is not None and on.type == "goal")
            for name in outcomes:
                outcomes[name] += int(info[f"outcome_{name}"][n])
            done[n] = want_terminated or want_truncated
    assert outcomes["catastrophe"] > 0  # the random walks met lava, so that was compared


def test_the_reference_env_is_minigrid_on_the_tasks_level():
    family = tasks.get("lava-crossing", train_levels=5)
    task = family.sample(1, "train", np.random.default_rng(0))[0]
    env = family.make_env(task)
    obs, _ = env.reset()
    batched = family.make_vec([task], autoreset_mode="disabled")
    np.testing.assert_array_equal(obs, batched.reset()[0][0])
    for action in (RIGHT, FORWARD, LEFT, FORWARD, FORWARD):
        obs, reward, terminated, _, info = env.step(action)
        want = batched.step(np.array([action]))
        np.testing.assert_array_equal(obs, want[0][0])
        assert (reward, terminated) == (want[1][0], want[2][0])
        assert info["outcome_catastrophe"] == want[4]["outcome_catastrophe"][0]


def test_training_levels_are_distinct_finite_and_disjoint_from_the_test_seeds():
    family = tasks.get("lava-crossing", size=9, rivers=1, train_levels=42)
    train = family.splits["train"]
    seeds = sorted({int(t.level) for t in family.sample(500, "train",
                                                         np.random.default_rng(0))})
    assert len(seeds) == 42  # a finite set, every one of them drawn
    layouts = {level(9, 1, s).cells.tobytes() for s in seeds}
    assert len(layouts) == 42 == distinct_layouts(9, 1)  # every layout the generator has
    test = family.sample(200, "test-id", np.random.default_rng(0))
    assert not {int(t.level) for t in test} & set(seeds)
    assert not any(train.contains({"size": 9, "rivers": 1, "level": t.level}) for t in test)
    ood = family.sample(5, "test-ood", np.random.default_rng(0))
    assert {(t.size, t.rivers) for t in ood} == {(11, 3)}


def test_distinct_layouts_counts_what_minigrid_makes():
    found = {level(9, 2, seed).cells.tobytes() for seed in range(3000)}
    assert len(found) <= distinct_layouts(9, 2) == 456
    assert len(found) >= 450  # nearly all of them, by 3000 seeds


def test_three_actions_are_minigrids_turns_and_forward():
    family = tasks.get("lava-crossing", size=9, rivers=1, train_levels=5, actions=3)
    level_tasks = family.sample(8, "train", np.random.default_rng(0))
    three = family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    all_seven = tasks.get("lava-crossing", size=9, rivers=1, train_levels=5)
    seven = all_seven.make_vec(all_seven.sample(8, "train", np.random.default_rng(0)),
                               autoreset_mode="disabled", seed=0)
    assert three.single_action_space.n == 3 and seven.single_action_space.n == 7
    np.testing.assert_array_equal(three.reset()[0], seven.reset()[0])
    rng = np.random.default_rng(1)
    for _ in range(30):  # the same first 3 actions do the same
        actions = rng.integers(3, size=len(level_tasks))
        np.testing.assert_array_equal(three.step(actions)[0], seven.step(actions)[0])
    reference = family.make_env(level_tasks[0])
    reference.reset()
    with pytest.raises(ValueError, match="action"):
        reference.step(3)


@pytest.mark.parametrize(("options", "message"), [
    ({"train_levels": 0}, "option train_levels must be an integer >= 1, got 0"),
    ({"size": 9, "rivers": 1, "train_levels": 43},
     "option train_levels must be at most 42 for size 9 and 1 river"),
    ({"size": 10}, "option size must be an odd integer >= 5, got 10"),
    ({"size": 9, "rivers": 7}, r"option rivers must be an integer in \[1, 6\] for size 9"),
    ({"lava": 1}, r"has no options \['lava'\]; its options: \['actions', 'rivers', 'size', "
                  r"'train_levels'\]"),
    ({"actions": 4}, r"option actions must be one of \[7, 3\], got 4"),
])
def test_bad_options_fail_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        tasks.get("lava-crossing", **options)


@pytest.mark.parametrize("observation", ["uncovered", "centred", "egocentric"])
@pytest.mark.parametrize("split", ["train", "test-ood"])
def test_lava_world_batched_levels_step_as_the_reference_env(observation, split):
    family = tasks.get("lava-world", observation=observation, train_levels=10)
    level_tasks = family.sample(6, split, np.random.default_rng(3))
    env = family.make_vec(level_tasks, autoreset_mode="disabled", seed=0)
    references = [family.make_env(task) for task in level_tasks]
    obs, _ = env.reset()
    for n, reference in enumerate(references):
        np.testing.assert_array_equal(obs[n], reference.reset()[0])
    rng = np.random.default_rng(4)
    done = np.zeros(len(level_tasks), dtype=bool)
    ended = 0
    for _ in range(40):
        actions = rng.integers(4, size=len(level_tasks))
        obs, reward, terminated, _, info = env.step(actions)
        for n, reference in enumerate(references):
            if done[n]:
                continue
            want_obs, want_reward, want_terminated, _, want_info = reference.step(
                int(actions[n]))
            np.testing.assert_array_equal(obs[n], want_obs)
            assert (reward[n], terminated[n]) == (want_reward, want_terminated)
            for name in ("catastrophe", "solved"):
                assert info[f"outcome_{name}"][n] == want_info[f"outcome_{name}"]
            done[n] = want_terminated
            ended += int(want_terminated)
    assert ended > 0


def test_lava_world_levels_have_a_safe_path_and_the_uncovered_map_grows():
    from tasks.gridworld.lava_world import level, reachable

    family = tasks.get("lava-world", train_levels=30)
    for task in family.sample(30, "test-ood", np.random.default_rng(0)):
        cells = level(task.size, task.lava_density, int(task.level)).cells
        goal = tuple(np.argwhere(cells == 8)[0])
        assert reachable(cells, (1, 1), goal)
    env = family.make_env(family.default_task)
    obs, _ = env.reset()
    seen = [(obs.reshape(13, 13, 3)[..., 0] > 0).sum()]
    for move in (1, 1, 2, 2):  # right, right, down, down
        obs, *_ = env.step(move)
        seen.append((obs.reshape(13, 13, 3)[..., 0] > 0).sum())
    # at first, cells 0..3 x 0..3 (2 cells of sight around (1, 1)); then more
    assert seen[0] == 16 and all(b >= a for a, b in itertools.pairwise(seen))


def test_lava_world_centred_map_puts_the_agent_in_the_middle():
    from tasks.gridworld.lava_world import level

    family = tasks.get("lava-world", train_levels=3, observation="centred")
    task = family.default_task
    cells = level(task.size, task.lava_density, int(task.level)).cells
    env = family.make_env(task)
    obs, _ = env.reset()
    planes = obs.reshape(23, 23, 4)  # a 13-cell map: 11 cells either side of the agent
    assert planes.sum(-1).max() == 1  # one kind per cell, or none (empty)
    # the agent at (1, 1) sees cells 0..3 x 0..3: offsets -1..2 from the middle (11, 11)
    for dx in range(-1, 3):
        for dy in range(-1, 3):
            kind = cells[1 + dx, 1 + dy]
            expected = [kind == 2, kind == 9, kind == 8, False]
            assert list(planes[11 + dx, 11 + dy]) == expected, (dx, dy)
    assert planes[11 + 3, 11 + 3, 3] == 1  # just out of sight: hidden
    assert planes[0, 0, 0] == 1  # beyond the map: wall


@pytest.mark.parametrize(("options", "message"), [
    ({"observation": "pixels"}, r"option observation must be one of \['uncovered', 'centred', "
                                r"'egocentric'\], got 'pixels'"),
    ({"lava_density": 0.9}, r"option lava_density must be a number in \[0, 0.5\]"),
    ({"train_levels": 0}, "option train_levels must be an integer >= 1, got 0"),
    ({"size": 4}, "option size must be an integer >= 5, got 4"),
])
def test_lava_world_bad_options_fail_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        tasks.get("lava-world", **options)


@pytest.mark.parametrize(("name", "options"), [
    ("lava-crossing", {}), ("lava-world", {"observation": "egocentric"}),
    ("lava-world", {"observation": "uncovered"}),
    ("lava-world", {"observation": "centred"})])
def test_the_shortest_path_oracle_solves_every_level_without_lava(name, options):
    from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
    from fewshot.references import oracle_learner

    family = tasks.get(name, train_levels=5, **options)
    settings = EvaluationSettings(episodes=2, tasks=12, trials=1, seed=0)
    records = evaluate(oracle_learner(family, name="oracle"), family,
                       freeze_tasks(family, settings), settings, run="test", run_seed=0)
    assert records["outcome.solved"].all() and not records["outcome.catastrophe"].any()
    assert (records["return"] > 0.5).all()  # the goal, well before the horizon
