"""Observation parts (tasks/locomotion/observations.py): what they add or transform, that
they change neither physics nor reward, their splits, composition with reward and
dynamics parts (batched equal to reference), and bad settings named."""

from __future__ import annotations

import numpy as np
import pytest

import tasks
from tasks.locomotion import CHEETAH, locomotion_family
from tasks.locomotion.dynamics import Scaling
from tasks.locomotion.observations import ChannelGain, Distractors
from tasks.locomotion.rewards import Forward, TargetVelocity

STEPS = 30


def rollout(family, task_list, *, seed: int = 0):
    """Observations [T + 1, N, O] and rewards [T, N] under the same seeded actions."""
    venv = family.make_vec(task_list, seed=seed, autoreset_mode="disabled")
    obs, _ = venv.reset()
    rng = np.random.default_rng(1)
    observations, rewards = [obs], []
    for _ in range(STEPS):
        action = rng.uniform(-1, 1, (venv.num_envs, *venv.single_action_space.shape))
        obs, reward, *_ = venv.step(action.astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


def test_distractors_are_appended_and_change_neither_physics_nor_reward():
    family = tasks.get("cheetah-distract")
    plain = tasks.get("cheetah-dyn")  # the same robot and reward, for the robot's size
    robot_size = plain.make_env().observation_space.shape[0]
    names = [f"distractor_{i}" for i in range(4)]
    task_list = [family.task_from_dict(dict(zip(names, values, strict=True)))
                 for values in ([0.1, -0.2, 0.3, -0.4], [1.9, -1.9, 0.0, 1.5])]
    obs, rewards = rollout(family, [task_list[0], task_list[1]], seed=4)
    same_seed_obs, same_seed_rewards = rollout(family, [task_list[1], task_list[0]], seed=4)
    assert obs.shape[-1] == robot_size + 4
    # every step shows the task's values, unchanged
    np.testing.assert_array_equal(obs[:, 0, robot_size:], np.broadcast_to(
        [0.1, -0.2, 0.3, -0.4], (STEPS + 1, 4)))
    np.testing.assert_array_equal(obs[:, 1, robot_size:], np.broadcast_to(
        [1.9, -1.9, 0.0, 1.5], (STEPS + 1, 4)))
    # swapping the tasks between two simulations with the same noise changes nothing else
    for n in (0, 1):
        np.testing.assert_array_equal(obs[:, n, :robot_size],
                                      same_seed_obs[:, n, :robot_size])
        np.testing.assert_array_equal(rewards[:, n], same_seed_rewards[:, n])


def test_distractor_splits_are_a_narrow_box_and_its_shell():
    family = tasks.get("cheetah-distract")
    rng = np.random.default_rng(0)
    names = [f"distractor_{i}" for i in range(4)]
    train = family.task_arrays(family.sample(400, "train", rng))
    ood = family.task_arrays(family.sample(400, "test-ood", rng))
    train_values = np.stack([train[n] for n in names], axis=1)
    ood_values = np.stack([ood[n] for n in names], axis=1)
    assert ((train_values >= -0.5) & (train_values < 0.5)).all()
    assert ((ood_values >= -2.0) & (ood_values < 2.0)).all()
    # no test-ood task could be a training task: one feature at least is unseen
    assert ((ood_values < -0.5) | (ood_values >= 0.5)).any(axis=1).all()


def test_a_channel_gain_scales_only_its_channels_and_composes_with_dynamics():
    family = locomotion_family(
        name="test-cheetah-vel-dyn-seen", robot=CHEETAH, reward=TargetVelocity(),
        dynamics=[Scaling(factors=("mass",))],
        observation=[ChannelGain(channels=(0, 3)), Distractors(count=2)], horizon=50)
    assert [p.name for p in family.params] == [
        "goal_velocity", "mass_scale", "observation_gain", "distractor_0", "distractor_1"]
    base = family.task_from_dict(dict(goal_velocity=1.0, mass_scale=1.0, observation_gain=1.0,
                                      distractor_0=0.0, distractor_1=0.0))
    gained = family.task_from_dict(dict(goal_velocity=1.0, mass_scale=1.0,
                                        observation_gain=1.7, distractor_0=0.0,
                                        distractor_1=0.0))
    obs, rewards = rollout(family, [base, base])  # the same noise in both runs
    gained_obs, gained_rewards = rollout(family, [gained, gained])
    ratio = np.ones(obs.shape[-1])
    ratio[[0, 3]] = 1.7
    np.testing.assert_allclose(gained_obs, obs * ratio, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(gained_rewards, rewards)
    # the reference env sees what the batched env sees
    env = family.make_env(gained)
    first, _ = env.reset(seed=0)
    venv = family.make_vec([gained], seed=0)
    np.testing.assert_allclose(venv.reset()[0][0], first, rtol=0, atol=1e-8)


def test_forward_with_distractors_has_only_their_splits():
    family = tasks.get("cheetah-distract")
    assert set(family.splits) >= {"train", "test-ood"}
    assert isinstance(Forward().splits, dict) and not Forward().splits


@pytest.mark.parametrize(("part", "message"), [
    (lambda: Distractors(count=0), "count must be an integer >= 1"),
    (lambda: Distractors(train_range=(1.0, 0.0)), r"train_range must be \(low, high\)"),
    (lambda: Distractors(train_range=(-3.0, 0.0)), "must lie within ood_range"),
    (lambda: ChannelGain(channels=()), "channels must be non-empty"),
    (lambda: ChannelGain(ood_range=(0.0, 2.0)), "gains are positive"),
])
def test_bad_settings_are_named(part, message):
    with pytest.raises(ValueError, match=message):
        part()


def test_a_channel_beyond_the_observation_is_named():
    family = locomotion_family(name="test-cheetah-gain-999", robot=CHEETAH, reward=Forward(),
                               observation=[ChannelGain(channels=(999,))], horizon=10)
    with pytest.raises(ValueError, match=r"channels \[999\] do not fit an observation of 17"):
        family.make_vec([family.default_task], seed=0)
    with pytest.raises(ValueError, match=r"channels \[999\] do not fit an observation of 17"):
        family.make_env(family.default_task)
