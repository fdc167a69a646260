"""Observation parts (tasks/locomotion/observations.py): what they add or transform, that
they change neither physics nor reward, their splits, composition with reward and
dynamics parts (batched equal to reference), and bad settings named."""

from __future__ import annotations

import numpy as np
import pytest

import tasks
from tasks.locomotion import CHEETAH, locomotion_family
from tasks.locomotion.dynamics import Scaling
from tasks.locomotion.observations import ChannelGain, Distractors, ObservationNoise
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
    (lambda: Distractors(colours=-1), "colours must be an integer >= 0"),
    (lambda: ObservationNoise(ood_range=(-1.0, 0.2)), "standard deviation is >= 0"),
    (lambda: ObservationNoise(train_range=(0.0, 0.5)), "must lie within ood_range"),
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


def noisy_family():
    return locomotion_family(name="test-cheetah-noise", robot=CHEETAH, reward=Forward(),
                             observation=[Distractors(count=1), ObservationNoise()],
                             horizon=50)


def test_observation_noise_has_the_tasks_std_and_changes_neither_physics_nor_reward():
    family = noisy_family()
    quiet = family.task_from_dict(dict(distractor_0=0.3, observation_noise=0.0))
    noisy = family.task_from_dict(dict(distractor_0=0.3, observation_noise=0.15))
    # the noise is drawn after the reset's physics noise, so the first observations differ
    # only by it; the dynamics and rewards are those of the quiet task
    obs, rewards = rollout(family, [quiet, noisy], seed=3)
    same, same_rewards = rollout(family, [quiet, quiet], seed=3)
    np.testing.assert_array_equal(rewards, same_rewards)
    np.testing.assert_array_equal(obs[:, 0], same[:, 0])
    assert obs[:, 0, -1].tolist() == [0.3] * (STEPS + 1)  # no noise at std 0
    noise = obs[1:, 1] - same[1:, 1]  # the quiet simulation 1's noise-free observations
    # fresh noise at every step on every number, of the task's scale
    assert np.abs(noise).min() > 0
    assert 0.12 < noise.std() < 0.18
    assert abs(noise.mean()) < 0.03


def test_observation_noise_of_the_batched_env_equals_the_reference_envs():
    family = noisy_family()
    task = family.task_from_dict(dict(distractor_0=-0.2, observation_noise=0.1))
    venv = family.make_vec([task, task], autoreset_mode="disabled")
    batched, _ = venv.reset(seed=[11, 12])
    envs = [family.make_env(task) for _ in range(2)]
    firsts = [env.reset(seed=seed)[0] for env, seed in zip(envs, (11, 12), strict=True)]
    np.testing.assert_allclose(batched, np.stack(firsts), rtol=0, atol=1e-8)
    rng = np.random.default_rng(0)
    for _ in range(10):
        action = rng.uniform(-1, 1, (2, 6)).astype(np.float32)
        obs, reward, *_ = venv.step(action)
        for n, env in enumerate(envs):
            single, single_reward, *_ = env.step(action[n])
            np.testing.assert_allclose(obs[n], single, rtol=0, atol=1e-7)
            assert single_reward == pytest.approx(reward[n], abs=1e-7)
    # the two simulations' noise streams differ: their seeds do
    assert not np.allclose(obs[0], obs[1])


def test_noise_splits_hold_out_noisier_sensors():
    family = locomotion_family(name="test-cheetah-noise-only", robot=CHEETAH, reward=Forward(),
                               observation=[ObservationNoise()], horizon=50)
    rng = np.random.default_rng(0)
    train = family.task_arrays(family.sample(300, "train", rng))["observation_noise"]
    ood = family.task_arrays(family.sample(300, "test-ood", rng))["observation_noise"]
    assert ((train >= 0) & (train < 0.05)).all()
    assert ((ood >= 0.05) & (ood < 0.2)).all()


def test_training_colours_are_a_few_fixed_points_and_test_id_the_rest_of_the_box():
    family = tasks.get("cheetah-distract", colours=3)
    names = [f"distractor_{i}" for i in range(4)]
    colours = family.finite_tasks("train")
    assert len(colours) == 3
    values = np.array([[getattr(c, n) for n in names] for c in colours])
    assert ((values >= -0.5) & (values < 0.5)).all()
    assert len({tuple(v) for v in values}) == 3
    # training draws only those colours; test-id draws the box, almost surely new colours
    rng = np.random.default_rng(1)
    drawn = family.sample(60, "train", rng)
    assert {tuple(getattr(t, n) for n in names) for t in drawn} == {tuple(v) for v in values}
    fresh = family.task_arrays(family.sample(60, "test-id", rng))
    fresh_values = np.stack([fresh[n] for n in names], axis=1)
    assert ((fresh_values >= -0.5) & (fresh_values < 0.5)).all()
    assert not any((fresh_values == v).all(axis=1).any() for v in values)
    # the same option gives the same colours (they are part of the family, not the run)
    again = tasks.get("cheetah-distract", colours=3)
    assert again.finite_tasks("train") == colours
    ood = family.task_arrays(family.sample(60, "test-ood", rng))
    assert (np.abs(np.stack([ood[n] for n in names], axis=1)) >= 0.5).any(axis=1).all()


def test_the_range_trained_family_draws_a_fresh_colour_for_every_task():
    family = tasks.get("cheetah-distract")
    drawn = family.task_arrays(family.sample(50, "train", np.random.default_rng(0)))
    assert len(set(drawn["distractor_0"].tolist())) == 50
    with pytest.raises(ValueError, match="option colours must be an integer >= 0"):
        tasks.get("cheetah-distract", colours=-2)


def test_specialist_families_train_on_one_task():
    hop = tasks.get("cheetah-gait", only="hop")
    assert [t.gait for t in hop.finite_tasks("train")] == [4]
    assert "test-ood" not in hop.splits
    assert tasks.get("cheetah-gait").task_from_dict({"gait": 4}).gait == 4
    fast = tasks.get("cheetah-vel", only=2.5)
    assert {t.goal_velocity for t in fast.sample(5, "train", np.random.default_rng(0))} == {2.5}
    assert "test-ood" not in fast.splits  # 2.5 m/s is the usual test-ood
    assert "test-ood" in tasks.get("cheetah-vel", only=1.0).splits
    assert tasks.get("cheetah-vel").splits == tasks.get("cheetah-vel", only=-1.0).splits
    assert tasks.get("cheetah-vel").region("test-ood").boxes[0]["goal_velocity"].lo == 2.0
    with pytest.raises(ValueError, match=r"option only must be a speed in \[0, 3\] m/s"):
        tasks.get("cheetah-vel", only=3.5)
    with pytest.raises(ValueError, match="option only must be one of"):
        tasks.get("cheetah-gait", only="gallop")
