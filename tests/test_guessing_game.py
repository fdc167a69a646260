"""guessing-game: the digits variant (sklearn's load_digits images) against its scalar
reference env and the dataset itself, its fixed split and options; the synthetic default
as it always was."""

from __future__ import annotations

import functools
import pickle
import re

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from sklearn.datasets import load_digits

import tasks
from fewshot.eval.task_sets import same_options
from tasks.guessing_game import (
    DIGITS_HELD_OUT,
    DIGITS_SEED,
    PROTOTYPES,
    guessing_game,
)

TRAIN_IMAGES = 50
POOL = 1797 - DIGITS_HELD_OUT  # the training pool: 1197 images


@functools.cache
def family(**options) -> tasks.TaskFamily:
    return tasks.get("guessing-game", observations="digits", **options)


@functools.cache
def dataset() -> tuple[np.ndarray, np.ndarray]:
    """load_digits by hand: the 8x8 images flattened to [0, 1], and their labels."""
    data = load_digits()
    return data.images.reshape(len(data.images), 64) / 16.0, data.target


def images_of(region: tasks.Region) -> set[int]:
    return {int(b["image"].lo) for b in region.boxes}


def one(split: str, seed: int = 0, fam: tasks.TaskFamily | None = None):
    return (fam or family(train_images=TRAIN_IMAGES)).sample(
        1, split, np.random.default_rng(seed))[0]


# Batched env equals the reference env ---------------------------------------------------

def test_the_batched_digits_game_steps_as_its_reference_envs():
    fam = family(train_images=TRAIN_IMAGES)
    rng = np.random.default_rng(0)
    task_list = (fam.sample(4, "train", rng) + fam.sample(3, "test-id", rng)
                 + fam.sample(3, "test-ood", rng))
    venv = fam.make_vec(task_list, seed=3, autoreset_mode="disabled")
    envs = [fam.make_env(t) for t in task_list]
    obs, _ = venv.reset()
    np.testing.assert_array_equal(obs, [env.reset(seed=3 + i)[0]
                                        for i, env in enumerate(envs)])
    assert venv.single_action_space == gymnasium.spaces.Discrete(10)
    assert venv.single_observation_space.shape == (64,)
    ends = successes = 0
    for _ in range(60):  # 12 steps per episode at most: several episodes per env
        action = rng.integers(0, 10, venv.num_envs)
        obs, reward, term, trunc, info = venv.step(action)
        ref = [env.step(a) for env, a in zip(envs, action, strict=True)]
        np.testing.assert_array_equal(obs, [r[0] for r in ref])
        np.testing.assert_array_equal(reward, [r[1] for r in ref])
        np.testing.assert_array_equal(term, [r[2] for r in ref])
        np.testing.assert_array_equal(trunc, [r[3] for r in ref])
        np.testing.assert_array_equal(info["reward_guess"], [r[4]["reward_guess"] for r in ref])
        np.testing.assert_array_equal(info["outcome_success"],
                                      [r[4]["outcome_success"] for r in ref])
        np.testing.assert_array_equal(info["outcome_success"], term)
        done = term | trunc
        ends += int(done.sum())
        successes += int(term.sum())
        if done.any():
            obs, _ = venv.reset(options={"reset_mask": done})
            np.testing.assert_array_equal(obs[done], [envs[i].reset()[0]
                                                      for i in np.flatnonzero(done)])
    assert successes >= venv.num_envs and ends > successes  # right guesses and time-outs


def test_the_digits_reference_env_passes_gymnasium_env_checker():
    env = family(train_images=TRAIN_IMAGES).make_env(one("test-ood"))
    check_env(env.unwrapped, skip_render_check=True)


# Observations: the dataset's images ------------------------------------------------------

def test_an_observation_is_the_dataset_image_and_its_class_the_dataset_label():
    fam = family(train_images=TRAIN_IMAGES)
    images, labels = dataset()
    for split in ("train", "test-id"):
        task = one(split, seed=4)
        env = fam.make_env(task)
        x, _ = env.reset(seed=0)
        np.testing.assert_array_equal(x, images[task.image])
        np.testing.assert_array_equal(x, load_digits().images[task.image].ravel() / 16)
        label = int(labels[task.image])
        obs, reward, terminated, _, info = env.step(np.int64(label))
        assert (reward, terminated, info["outcome_success"]) == (0.0, True, True)
        np.testing.assert_array_equal(obs, x)
    assert fam.make_env().observation_space == gymnasium.spaces.Box(0.0, 1.0, (64,),
                                                                    np.float64)


def test_a_wrong_guess_costs_one_and_shows_the_same_image_until_the_right_one():
    fam = family(train_images=TRAIN_IMAGES)
    task = one("test-ood", seed=2)
    label = int(dataset()[1][task.image])
    wrong = [c for c in range(10) if c != label]
    env = fam.make_env(task)
    x, _ = env.reset(seed=0)
    venv = fam.make_vec([task, task], seed=0)
    venv.reset()
    for guess in wrong[:3]:
        obs, reward, terminated, _, info = env.step(np.int64(guess))
        np.testing.assert_array_equal(obs, x)
        assert (reward, terminated, info["outcome_success"]) == (-1.0, False, False)
        obs_N, reward_N, term_N, _, info_N = venv.step(np.array([guess, label]))
        np.testing.assert_array_equal(obs_N[0], x)
        assert reward_N.tolist() == [-1.0, 0.0] and term_N.tolist() == [False, True]
        assert info_N["outcome_success"].tolist() == [False, True]
        venv.reset(options={"reset_mask": np.array([False, True])})
    obs, reward, terminated, _, info = env.step(np.int64(label))
    assert (reward, terminated, info["outcome_success"]) == (0.0, True, True)
    np.testing.assert_array_equal(obs, x)


def test_ood_observations_are_corrupted_deterministically_and_stay_in_the_unit_box():
    fam = family(train_images=TRAIN_IMAGES)
    images, _ = dataset()
    ood = fam.sample(20, "test-ood", np.random.default_rng(5))
    assert all(0.25 <= t.noise < 0.5 for t in ood)
    first = fam.make_vec(ood, seed=0).reset()[0]
    again = fam.make_vec(ood, seed=99).reset()[0]  # the env's seed plays no part
    np.testing.assert_array_equal(first, again)
    for i, task in enumerate(ood[:3]):
        np.testing.assert_array_equal(fam.make_env(task).reset(seed=i)[0], first[i])
    clean = images[[t.image for t in ood]]
    assert (first >= 0).all() and (first <= 1).all()
    assert (np.abs(first - clean).mean(axis=1) > 0.05).all()
    # Gaussian noise of std s clipped to [0, 1]: the change grows with s
    task = ood[0]
    values = {"image": task.image}
    low = fam.make_env(fam.task_from_dict({**values, "noise": 0.25})).reset()[0]
    high = fam.make_env(fam.task_from_dict({**values, "noise": 0.5})).reset()[0]
    base = images[task.image]
    assert np.abs(high - base).sum() > np.abs(low - base).sum() > 0
    zero = fam.make_env(fam.task_from_dict({**values, "noise": 0.0})).reset()[0]
    np.testing.assert_array_equal(zero, base)


# The split -------------------------------------------------------------------------------

def test_train_takes_the_first_train_images_of_a_fixed_pool_disjoint_from_the_tests():
    small, default = family(train_images=TRAIN_IMAGES), family()
    assert (small.options["observations"], small.options["train_images"]) == (
        "digits", TRAIN_IMAGES)
    assert default.options["train_images"] == 100
    train, test_id = images_of(small.splits["train"]), images_of(small.splits["test-id"])
    assert len(train) == TRAIN_IMAGES and len(test_id) == DIGITS_HELD_OUT
    assert not train & test_id
    assert images_of(small.splits["test-ood"]) == test_id
    assert train < images_of(default.splits["train"])  # a prefix of the same pool
    assert len(images_of(family(train_images=POOL).splits["train"]) | test_id) == 1797
    order = np.random.default_rng(DIGITS_SEED).permutation(1797)  # the fixed split
    assert test_id == set(order[:DIGITS_HELD_OUT].tolist())
    assert train == set(order[DIGITS_HELD_OUT:DIGITS_HELD_OUT + TRAIN_IMAGES].tolist())
    sampled = small.sample(2 * TRAIN_IMAGES, "train", np.random.default_rng(0), cover=True)
    assert {t.image for t in sampled} == train and {t.noise for t in sampled} == {0.0}
    assert {t.noise for t in small.sample(20, "test-id", np.random.default_rng(1))} == {0.0}
    assert small.horizon == 12 and small.outcomes == ("success",)
    labels = dataset()[1]
    assert set(labels[sorted(test_id)].tolist()) == set(range(10))


def test_digits_tasks_pickle_and_envs_truncate_at_the_variants_horizon():
    fam = family(train_images=TRAIN_IMAGES)
    task = one("test-ood")
    assert pickle.loads(pickle.dumps(task)) == task
    env = fam.make_env(task)  # through gymnasium.make, with the family's options
    assert env.unwrapped.family is fam and env.spec.max_episode_steps == fam.horizon == 12
    obs, _ = env.reset(seed=0)
    wrong = (int(dataset()[1][task.image]) + 1) % 10
    steps = [env.step(np.int64(wrong)) for _ in range(12)]
    assert [s[3] for s in steps] == [False] * 11 + [True]  # truncated at 12, not at 6
    assert not any(s[2] for s in steps)
    np.testing.assert_array_equal(steps[-1][0], obs)


# Options ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"observations": "mnist"},
     "option observations must be one of ['synthetic', 'digits'], got 'mnist'"),
    ({"observations": "digits", "train_images": 0},
     f"option train_images must be an integer in [1, {POOL}] (the training pool), got 0"),
    ({"observations": "digits", "train_images": POOL + 1},
     f"option train_images must be an integer in [1, {POOL}] (the training pool), got "
     f"{POOL + 1}"),
    ({"observations": "digits", "train_images": True}, "option train_images must be an "),
    ({"observations": "digits", "train_instances": 64},
     "option train_instances must be left at its default (256) when option observations "
     "is 'digits'"),
    ({"train_images": 50},
     "option train_images must be left at its default (100) when option observations is "
     "'synthetic'"),
])
def test_bad_options_fail_naming_the_option_and_what_it_allows(options, message):
    for build in (guessing_game, functools.partial(tasks.get, "guessing-game")):
        with pytest.raises(ValueError, match=re.escape(message)) as error:
            build(**options)
        assert str(error.value).startswith("family 'guessing-game': option ")


# The synthetic default, unchanged --------------------------------------------------------

def test_the_synthetic_default_is_the_game_it_always_was():
    fam = tasks.get("guessing-game")
    assert fam is tasks.get("guessing-game", observations="synthetic")
    # task sets stored before the digits variant name only train_instances: still this game
    assert same_options(fam, {"train_instances": 256})
    assert not same_options(fam, {"train_instances": 8})
    assert not same_options(fam, {"train_instances": 256, "observations": "digits"})
    assert [p.name for p in fam.params] == ["label", "instance", "noise"]
    assert {s: len(r.boxes) for s, r in fam.splits.items()} == {
        "train": 4 * 256, "test-id": 4, "test-ood": 4}
    assert fam.horizon == 6 and fam.make_env().action_space == gymnasium.spaces.Discrete(4)
    assert fam.task_to_dict(fam.sample(1, "train", np.random.default_rng(0))[0]) == {
        "label": 2, "instance": 0.546875, "noise": 1.5}
    assert [fam.task_to_dict(t) for t in fam.sample(3, "test-ood",
                                                    np.random.default_rng(0))] == [
        {"label": 2, "instance": 0.8158535541215322, "noise": 2.502738500170148},
        {"label": 1, "instance": 0.7294965609839984, "noise": 3.043624991465423},
        {"label": 0, "instance": 0.8132702392002724, "noise": 3.412755577277722}]
    task = fam.task_from_dict({"label": 2, "instance": 0.25, "noise": 0.5})
    seed = int(np.float64(0.25).view(np.uint64))
    formula = PROTOTYPES[2] + 0.5 * np.random.default_rng(seed).normal(size=8)
    x = fam.make_env(task).reset(seed=0)[0]
    np.testing.assert_array_equal(x, formula)
    np.testing.assert_array_equal(fam.make_vec([task]).reset()[0][0], formula)
    np.testing.assert_allclose(x, [1.072145201241, -0.509433535652, 0.415196048998,
                                   -1.423853698086, -0.503613756051, 0.633300943458,
                                   0.956303349053, 0.792834163768], rtol=0, atol=1e-11)
    assert tasks.get("guessing-game", train_instances=8).options["train_instances"] == 8
