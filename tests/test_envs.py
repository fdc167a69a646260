"""Contract tests for every family's envs: batched, reference and through gymnasium."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit

import tasks
from tasks.locomotion import ANT, CHEETAH
from tasks.locomotion.dynamics import SCALED_FIELDS, model_field
from tasks.point_nav import PointNavSim

NAMES = tasks.names()
GRID_NAMES = ("lava-crossing", "lava-world")  # episodes end at the goal or in lava
NUMPY_NAMES = ("point-nav", "bandit", "guessing-game", "maze", "lava-jump",  # numpy, not MuJoCo
               *GRID_NAMES)
MUJOCO_NAMES = [n for n in NAMES if n not in NUMPY_NAMES]
DISCRETE_NAMES = [n for n in NAMES if isinstance(tasks.get(n).make_env().action_space,
                                                 gymnasium.spaces.Discrete)]
BOX_NAMES = [n for n in NAMES if n not in DISCRETE_NAMES]
# episodes that run to the horizon under the zero action
ENDLESS_NAMES = [n for n in NAMES if n not in ("bandit", "guessing-game", *GRID_NAMES)]
SEED = 11
ROLLOUT_STEPS = 250  # past the longest horizon (200), so every family ends an episode


def mixed_tasks(family: tasks.TaskFamily, n: int, seed: int = 0) -> list:
    """n tasks, the first half from train, the rest from test-ood (or test-id)."""
    rng = np.random.default_rng(seed)
    other = "test-ood" if "test-ood" in family.splits else "test-id"
    return family.sample(n // 2, "train", rng) + family.sample(n - n // 2, other, rng)


def two_distinct_tasks(family: tasks.TaskFamily) -> tuple:
    first, *rest = family.sample(20, "train", np.random.default_rng(1))
    return first, next(t for t in rest if t != first)


def random_actions(space: gymnasium.Space, shape: tuple, rng: np.random.Generator):
    if isinstance(space, gymnasium.spaces.Discrete):
        return rng.integers(0, space.n, shape)
    return rng.uniform(space.low, space.high, (*shape, *space.shape)).astype(np.float32)


def zero_actions(space: gymnasium.Space) -> np.ndarray:
    """Zeros of the space's shape and type: no push for a Box, the first choice otherwise."""
    return np.zeros(space.shape, dtype=space.dtype)


def reward_terms(info: dict) -> dict:
    return {k: v for k, v in info.items() if k.startswith("reward_")}


def run_reference(env: gymnasium.Env, actions: np.ndarray, seed: int,
                  options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards under fixed actions (fewer than the horizon)."""
    obs, _ = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, *_ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


def run_batched(venv: gymnasium.vector.VectorEnv, actions: np.ndarray,
                first_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    observations, rewards = [first_obs], []
    for action in actions:
        obs, reward, *_ = venv.step(action)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


@dataclass
class Rollout:
    """A batched env and its reference envs stepped side by side with the same actions."""

    name: str
    venv: gymnasium.vector.VectorEnv
    envs: list
    batched: list = field(default_factory=list)    # (obs, reward, term, trunc, info)
    reference: list = field(default_factory=list)  # per step, a list over envs
    reset_obs: list = field(default_factory=list)  # (batched [N, O], reference list)
    episode_ends: int = 0


@pytest.fixture(scope="module", params=NAMES)
def rollout(request) -> Rollout:
    family = tasks.get(request.param)
    task_list = mixed_tasks(family, 4)
    venv = family.make_vec(task_list, seed=SEED, autoreset_mode="disabled")
    envs = [family.make_env(t) for t in task_list]
    out = Rollout(request.param, venv, envs)
    obs, _ = venv.reset()
    out.reset_obs.append((obs, [env.reset(seed=SEED + i)[0] for i, env in enumerate(envs)]))
    rng = np.random.default_rng(5)
    for _ in range(ROLLOUT_STEPS):
        action = random_actions(venv.single_action_space, (venv.num_envs,), rng)
        step = venv.step(action)
        out.batched.append(step)
        out.reference.append([env.step(a) for env, a in zip(envs, action, strict=True)])
        done = step[2] | step[3]
        if done.any():
            out.episode_ends += int(done.sum())
            obs, _ = venv.reset(options={"reset_mask": done})
            ref_obs = [envs[i].reset()[0] for i in np.flatnonzero(done)]
            out.reset_obs.append((obs[done], ref_obs))
    return out


# gymnasium's env checker --------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_reference_env_passes_gymnasium_env_checker(name):
    family = tasks.get(name)
    split = "test-ood" if "test-ood" in family.splits else "train"
    task = family.sample(1, split, np.random.default_rng(3))[0]
    env = family.make_env(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert unexpected == []


# Batched equals reference; reward terms; observations ---------------------------------

def test_rollout_ends_episodes_and_resets(rollout):
    assert rollout.episode_ends >= rollout.venv.num_envs
    assert len(rollout.reset_obs) >= 2


def test_batched_env_equals_reference_envs(rollout):
    for batched_obs, ref_obs in rollout.reset_obs:
        np.testing.assert_allclose(batched_obs, np.array(ref_obs), rtol=0, atol=1e-8)
    for t, ((obs, reward, term, trunc, info), ref) in enumerate(
            zip(rollout.batched, rollout.reference, strict=True)):
        where = f"{rollout.name} step {t}"
        np.testing.assert_allclose(obs, np.array([r[0] for r in ref]), rtol=0, atol=1e-8,
                                   err_msg=where)
        np.testing.assert_allclose(reward, [r[1] for r in ref], rtol=0, atol=1e-8,
                                   err_msg=where)
        np.testing.assert_array_equal(term, [r[2] for r in ref], err_msg=where)
        np.testing.assert_array_equal(trunc, [r[3] for r in ref], err_msg=where)
        np.testing.assert_array_equal(info["diverged"], [r[4]["diverged"] for r in ref],
                                      err_msg=where)
        terms = reward_terms(info)
        assert terms
        for r in ref:
            assert set(reward_terms(r[4])) == set(terms), where
        for key, value in terms.items():
            np.testing.assert_allclose(value, [r[4][key] for r in ref], rtol=0, atol=1e-8,
                                       err_msg=f"{where} {key}")


def test_reward_terms_sum_to_reward(rollout):
    for (_, reward, _, _, info), ref in zip(rollout.batched, rollout.reference, strict=True):
        terms = reward_terms(info)
        assert terms
        np.testing.assert_allclose(sum(terms.values()), reward, rtol=0, atol=1e-12)
        for _, r, _, _, i in ref:
            assert reward_terms(i)
            assert sum(reward_terms(i).values()) == pytest.approx(r, rel=0, abs=1e-12)


def test_observations_are_finite_float64_in_the_observation_space(rollout):
    venv = rollout.venv
    size = venv.single_observation_space.shape
    assert venv.observation_space.shape == (venv.num_envs, *size)
    for env in rollout.envs:
        assert env.observation_space.shape == size
    batched = [obs for obs, _ in rollout.reset_obs] + [s[0] for s in rollout.batched]
    reference = [o for _, ref in rollout.reset_obs for o in ref]
    reference += [r[0] for step in rollout.reference for r in step]
    for obs in batched:
        assert obs.dtype == np.float64 and obs.shape[1:] == size
        assert np.isfinite(obs).all()
    for obs in reference:
        assert isinstance(obs, np.ndarray)
        assert obs.dtype == np.float64 and obs.shape == size
        assert np.isfinite(obs).all()


@pytest.mark.parametrize("name", MUJOCO_NAMES)
def test_action_space_matches_mujoco_ctrlrange(name):
    family = tasks.get(name)
    venv = family.make_vec([family.default_task], seed=0)
    env = family.make_env()
    ctrlrange = env.unwrapped.model.actuator_ctrlrange
    assert ctrlrange.shape[0] > 0
    for space in (venv.single_action_space, env.action_space):
        assert space.dtype == np.float32
        np.testing.assert_array_equal(space.low, ctrlrange[:, 0].astype(np.float32))
        np.testing.assert_array_equal(space.high, ctrlrange[:, 1].astype(np.float32))
    assert venv.action_space.shape == (1, *venv.single_action_space.shape)


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-dir"])
def test_actions_outside_the_box_move_and_cost_as_the_clipped_action(name):
    """The box's edge, pushed past by 1.5, 1e3 and 1e200: the same motion, reward and
    control cost as the edge itself, in the batched and the reference env."""
    family = tasks.get(name)
    size = family.make_env().action_space.shape[0]
    edge = np.random.default_rng(3).uniform(-1, 1, size)
    edge[::2] = np.sign(edge[::2])
    pushed = [np.where(np.abs(edge) == 1, edge * scale, edge) for scale in (1.5, 1e3, 1e200)]
    venv = family.make_vec([family.default_task] * 4)
    venv.reset(seed=[SEED] * 4)
    obs, reward, _, _, info = venv.step(np.array([edge, *pushed]))
    for i in range(1, 4):
        np.testing.assert_array_equal(obs[i], obs[0])
        assert reward[i] == reward[0]
        for key, value in reward_terms(info).items():
            assert value[i] == value[0], key
    cost = (ANT if name.startswith("ant") else CHEETAH).ctrl_cost_weight * np.sum(edge ** 2)
    assert info["reward_ctrl"] == pytest.approx([-cost] * 4, rel=1e-12)
    assert not info["diverged"].any()
    env = family.make_env(family.default_task)
    env.reset(seed=SEED)
    ref_obs, ref_reward, _, _, ref_info = env.step(pushed[-1])
    np.testing.assert_allclose(ref_obs, obs[0], rtol=0, atol=1e-8)
    assert ref_reward == pytest.approx(reward[0], rel=0, abs=1e-8)
    assert ref_info["reward_ctrl"] == pytest.approx(-cost, rel=1e-12)


def test_point_nav_actions_are_clipped_to_max_step():
    family = tasks.get("point-nav")
    task = family.task_from_dict({"goal_x": 0.9, "goal_y": 0.9})
    venv = family.make_vec([task, task], seed=0)
    env = family.make_env(task)
    assert venv.single_action_space.low == pytest.approx([-0.1, -0.1])
    assert venv.single_action_space.high == pytest.approx([0.1, 0.1])
    venv.reset()
    env.reset(seed=0)
    action = np.array([[0.5, -3.0], [0.05, -0.02]], dtype=np.float64)
    obs, *_ = venv.step(action)
    np.testing.assert_allclose(obs, [[0.1, -0.1], [0.05, -0.02]], rtol=0, atol=1e-15)
    ref_obs, *_ = env.step(action[0])
    np.testing.assert_allclose(ref_obs, [0.1, -0.1], rtol=0, atol=1e-15)


# Determinism --------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_trajectories(name):
    family = tasks.get(name)
    task_list = mixed_tasks(family, 3)
    first, second = (family.make_vec(task_list, seed=SEED) for _ in range(2))
    actions = random_actions(first.single_action_space, (60, 3), np.random.default_rng(2))
    a = run_batched(first, actions, first.reset()[0])
    b = run_batched(second, actions, second.reset()[0])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("name", MUJOCO_NAMES)
def test_different_seed_gives_different_initial_observations(name):
    family = tasks.get(name)
    task_list = mixed_tasks(family, 3)
    obs_a, _ = family.make_vec(task_list, seed=SEED).reset()
    obs_b, _ = family.make_vec(task_list, seed=SEED + 100).reset()
    assert (np.abs(obs_a - obs_b).max(axis=1) > 0).all()
    assert (np.abs(obs_a[0] - obs_a[1:]).max(axis=1) > 0).all()


def test_point_nav_starts_at_the_origin_whatever_the_seed():
    family = tasks.get("point-nav")
    task_list = mixed_tasks(family, 3)
    for seed in (SEED, SEED + 100):
        obs, _ = family.make_vec(task_list, seed=seed).reset()
        np.testing.assert_array_equal(obs, np.zeros((3, 2)))
        ref_obs, _ = family.make_env(task_list[0]).reset(seed=seed)
        np.testing.assert_array_equal(ref_obs, np.zeros(2))


# gymnasium registration ---------------------------------------------------------------

@pytest.mark.parametrize("name", ENDLESS_NAMES)
def test_gymnasium_make_truncates_at_exactly_the_horizon(name):
    family = tasks.get(name)
    env = gymnasium.make(family.env_id)
    assert isinstance(env, TimeLimit)
    task = family.sample(1, "train", np.random.default_rng(2))[0]
    env.reset(seed=0, options={"task": task})
    assert env.unwrapped.task == task
    zero = zero_actions(env.action_space)
    for t in range(1, family.horizon + 1):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert truncated == (t == family.horizon), f"step {t}"


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_make_env_has_its_spec(name):
    family = tasks.get(name)
    env = gymnasium.make(family.env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = env.spec
    assert spec is not None
    assert spec.id == family.env_id
    assert spec.max_episode_steps == family.horizon


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_make_vec_builds_a_batched_env(name):
    family = tasks.get(name)
    venv = gymnasium.make_vec(family.env_id, num_envs=3,
                              vectorization_mode="vector_entry_point")
    assert isinstance(venv, tasks.BatchedEnv)
    assert venv.num_envs == 3
    assert venv.tasks == [family.default_task] * 3
    assert venv.horizon == family.horizon
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, *venv.single_observation_space.shape)
    obs, reward, *_ = venv.step(zero_actions(venv.action_space))
    assert reward.shape == (3,)


@pytest.mark.parametrize("name", NAMES)
def test_task_set_by_set_task_or_reset_option_takes_effect(name):
    family = tasks.get(name)
    task_a, task_b = two_distinct_tasks(family)
    env = gymnasium.make(family.env_id)
    actions = random_actions(env.action_space, (30,), np.random.default_rng(4))
    env.unwrapped.set_task(task_a)
    obs_a, rewards_a = run_reference(env, actions, SEED)
    assert env.unwrapped.task == task_a
    obs_b, rewards_b = run_reference(env, actions, SEED, options={"task": task_b})
    assert env.unwrapped.task == task_b
    # the task changed what the env does (a gridworld's rewards are 0 until the goal)
    assert np.abs(rewards_a - rewards_b).max() > 1e-6 or np.any(obs_a != obs_b)
    for task, obs, rewards in ((task_a, obs_a, rewards_a), (task_b, obs_b, rewards_b)):
        fresh_obs, fresh_rewards = run_reference(family.make_env(task), actions, SEED)
        np.testing.assert_array_equal(obs, fresh_obs)
        np.testing.assert_array_equal(rewards, fresh_rewards)


def test_cheetah_vel_goal_changes_reward_but_not_motion():
    family = tasks.get("cheetah-vel")
    slow, fast = (family.task_from_dict({"goal_velocity": g}) for g in (0.0, 2.0))
    env = family.make_env(slow)
    actions = random_actions(env.action_space, (30,), np.random.default_rng(4))
    obs_slow, rewards_slow = run_reference(env, actions, SEED)
    env.unwrapped.set_task(fast)
    obs_fast, rewards_fast = run_reference(env, actions, SEED)
    np.testing.assert_array_equal(obs_slow, obs_fast)
    assert (rewards_slow != rewards_fast).all()


# Autoreset and task swaps -------------------------------------------------------------

@pytest.mark.parametrize("name", ENDLESS_NAMES)
def test_next_step_autoreset_after_truncation(name):
    family = tasks.get(name)
    task_list = mixed_tasks(family, 3)
    horizon = 5
    auto = family.make_vec(task_list, seed=SEED, horizon=horizon)
    manual = family.make_vec(task_list, seed=SEED, horizon=horizon,
                             autoreset_mode="disabled")
    actions = random_actions(auto.single_action_space, (horizon + 1, 3),
                             np.random.default_rng(6))
    auto.reset()
    manual.reset()
    late = np.array([False, True, False])
    for t in range(horizon):
        if t == 2:
            auto.reset(options={"reset_mask": late})
            manual.reset(options={"reset_mask": late})
        step = auto.step(actions[t])
        manual_step = manual.step(actions[t])
        for got, want in zip(step[:4], manual_step[:4], strict=True):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(step[3], ~late)
    np.testing.assert_array_equal(step[2], np.zeros(3, dtype=bool))

    obs, reward, terminated, truncated, info = auto.step(actions[horizon])
    reset_obs, _ = manual.reset(options={"reset_mask": ~late})
    manual_obs, manual_reward, *_ = manual.step(actions[horizon])
    np.testing.assert_array_equal(obs[~late], reset_obs[~late])
    np.testing.assert_array_equal(reward[~late], 0.0)
    assert not terminated.any() and not truncated.any()
    assert not info["diverged"].any()
    for value in reward_terms(info).values():
        np.testing.assert_array_equal(value[~late], 0.0)
    np.testing.assert_array_equal(obs[late], manual_obs[late])
    np.testing.assert_array_equal(reward[late], manual_reward[late])


@pytest.mark.parametrize("name", ["point-nav", "cheetah-vel", "ant-dir"])
def test_reset_after_an_episode_ends_cancels_the_pending_autoreset(name):
    family = tasks.get(name)
    task_list = mixed_tasks(family, 3)
    venv = family.make_vec(task_list, seed=SEED, horizon=3)
    actions = random_actions(venv.single_action_space, (4, 3), np.random.default_rng(6))
    venv.reset()
    for action in actions[:3]:
        truncated = venv.step(action)[3]
    assert truncated.all()
    got = run_batched(venv, actions[3:], venv.reset(seed=SEED + 1)[0])
    fresh = family.make_vec(task_list, seed=SEED + 1, horizon=3)
    want = run_batched(fresh, actions[3:], fresh.reset()[0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (got[1] != 0).all()


@pytest.mark.parametrize("name", ["point-nav", "cheetah-vel", "ant-dir"])
def test_empty_reset_mask_changes_nothing(name):
    family = tasks.get(name)
    venv = family.make_vec(mixed_tasks(family, 3), seed=SEED)
    venv.reset()
    actions = random_actions(venv.single_action_space, (2, 3), np.random.default_rng(6))
    obs, *_ = venv.step(actions[0])
    twin = family.make_vec(mixed_tasks(family, 3), seed=SEED)
    twin.reset()
    twin.step(actions[0])
    again, _ = venv.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    np.testing.assert_array_equal(again, obs)
    np.testing.assert_array_equal(venv.step(actions[1])[0], twin.step(actions[1])[0])



@pytest.mark.parametrize("name", ["point-nav", "cheetah-vel", "ant-dir", "lava-crossing"])
def test_idle_simulations_are_not_stepped_until_reset(name):
    """set_idle: an idle simulation keeps its state and observation, earns nothing and never
    ends; the others step exactly as in a twin env without idling; a reset wakes it."""
    family = tasks.get(name)
    venv, twin = (family.make_vec(mixed_tasks(family, 3), seed=SEED) for _ in range(2))
    actions = random_actions(venv.single_action_space, (4, 3), np.random.default_rng(6))
    first, _ = venv.reset()
    twin.reset()
    venv.set_idle(np.array([False, True, False]))
    for action in actions[:3]:
        obs, reward, terminated, truncated, _ = venv.step(action)
        want = twin.step(action)
        np.testing.assert_array_equal(obs[[0, 2]], want[0][[0, 2]])
        np.testing.assert_array_equal(obs[1], first[1])
        assert reward[1] == 0 and not terminated[1] and not truncated[1]
    again, _ = venv.reset(options={"reset_mask": np.array([False, True, False])})
    assert not np.array_equal(venv.step(actions[3])[0][1], again[1])
    with pytest.raises(ValueError, match=r"set_idle needs a bool array of shape \(3,\)"):
        venv.set_idle(np.ones(2, dtype=bool))

@pytest.mark.parametrize("name", NAMES)
def test_set_tasks_requires_reset_and_then_takes_effect(name):
    family = tasks.get(name)
    old = mixed_tasks(family, 3)
    new = old[::-1]
    assert new != old
    venv = family.make_vec(old, seed=SEED)
    venv.reset()
    actions = random_actions(venv.single_action_space, (20, 3), np.random.default_rng(7))
    venv.step(actions[0])
    venv.set_tasks(new)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(actions[0])
    assert venv.tasks == new
    got = run_batched(venv, actions, venv.reset(seed=SEED + 1)[0])
    fresh = family.make_vec(new, seed=SEED + 1)
    want = run_batched(fresh, actions, fresh.reset()[0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])

    got = run_batched(venv, actions, venv.reset(seed=SEED + 2, options={"tasks": old})[0])
    assert venv.tasks == old
    fresh = family.make_vec(old, seed=SEED + 2)
    want = run_batched(fresh, actions, fresh.reset()[0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# Dynamics -----------------------------------------------------------------------------

@pytest.mark.parametrize("factor", list(SCALED_FIELDS))
def test_cheetah_dyn_scale_changes_model_and_trajectory(factor):
    family = tasks.get("cheetah-dyn")
    unit = family.task_from_dict({p.name: 1.0 for p in family.params})
    scaled = family.task_from_dict({**family.task_to_dict(unit), f"{factor}_scale": 2.0})
    venv = family.make_vec([unit, scaled])
    obs, _ = venv.reset(seed=[SEED, SEED])
    np.testing.assert_array_equal(obs[0], obs[1])
    env = family.make_env(scaled)
    for name in SCALED_FIELDS[factor]:
        default = model_field(CHEETAH.model, name).copy()
        values = venv.sim.batch.expand(name)
        np.testing.assert_array_equal(values[0], default)
        np.testing.assert_array_equal(values[1], default * 2)
        np.testing.assert_array_equal(model_field(env.unwrapped.model, name), default * 2)
        np.testing.assert_array_equal(model_field(CHEETAH.model, name), default)
    actions = random_actions(venv.single_action_space, (30, 1), np.random.default_rng(8))
    observations, _ = run_batched(venv, actions.repeat(2, axis=1), obs)
    assert np.abs(observations[:, 0] - observations[:, 1]).max() > 1e-3


@pytest.mark.parametrize("leg", [0, 1, 2, 3])
def test_ant_crippled_leg_ignores_its_actions(leg):
    family = tasks.get("ant-crippled")
    task = family.task_from_dict({"crippled_leg": leg})
    crippled = ANT.leg_actuators(leg)
    healthy = ANT.leg_actuators((leg + 1) % 4)
    assert len(crippled) == 2 and len(healthy) == 2
    venv = family.make_vec([task] * 3)
    gear = venv.sim.batch.expand("actuator_gear")
    assert (gear[:, crippled] == 0).all()
    np.testing.assert_array_equal(
        gear[:, healthy], np.broadcast_to(ANT.model.actuator_gear[healthy], (3, 2, 6)))
    assert (family.make_env(task).unwrapped.model.actuator_gear[crippled] == 0).all()

    rng = np.random.default_rng(9)
    actions = random_actions(venv.single_action_space, (40, 1), rng).repeat(3, axis=1)
    actions[:, 1, crippled] = random_actions(venv.single_action_space, (40,), rng)[:, crippled]
    actions[:, 2, healthy] = random_actions(venv.single_action_space, (40,), rng)[:, healthy]
    observations, _ = run_batched(venv, actions, venv.reset(seed=[SEED] * 3)[0])
    np.testing.assert_array_equal(observations[:, 0], observations[:, 1])
    assert np.abs(observations[:, 0] - observations[:, 2]).max() > 1e-3


# Divergence ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cheetah-vel", "ant-dir"])
def test_divergence_terminates_only_that_env_quietly(name, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    family = tasks.get(name)
    task_list = mixed_tasks(family, 3)
    venv = family.make_vec(task_list, seed=SEED)
    twin = family.make_vec(task_list, seed=SEED)
    venv.reset()
    twin.reset()
    venv.sim.batch.bind("qvel")[0] = 1e12
    zero = zero_actions(venv.action_space)
    obs, reward, terminated, truncated, info = venv.step(zero)
    twin_obs, twin_reward, *_ = twin.step(zero)
    assert terminated[0] and info["diverged"][0] and not truncated[0]
    assert np.isfinite(obs[0]).all()
    assert reward[0] == 0.0
    assert not info["diverged"][1:].any() and not terminated[1:].any()
    np.testing.assert_array_equal(obs[1:], twin_obs[1:])
    np.testing.assert_array_equal(reward[1:], twin_reward[1:])

    obs, _, terminated, _, info = venv.step(zero)
    assert np.isfinite(obs).all()
    assert not terminated.any() and not info["diverged"].any()
    venv.sim.batch.bind("qvel")[0] = 1e12
    _, _, terminated, _, info = venv.step(zero)
    assert terminated[0] and info["diverged"][0], "a second divergence goes unnoticed"

    env = family.make_env(task_list[0])
    env.reset(seed=SEED)
    env.unwrapped.data.qvel[:] = 1e12
    obs, reward, terminated, truncated, info = env.step(zero[0])
    assert terminated and info["diverged"] and not truncated
    assert np.isfinite(obs).all()
    assert reward == 0.0

    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err


# Bad input ----------------------------------------------------------------------------

BAD_ACTIONS = {
    "shape": (lambda a: np.concatenate([a, a[..., :1]], axis=-1), "shape"),
    "dtype": (lambda a: a.astype(np.int64), "dtype|float"),
    "nan": (lambda a: np.where(np.arange(a.shape[-1]) == 0, np.nan, a), "nan|finite"),
}


@pytest.mark.parametrize("problem", list(BAD_ACTIONS))
@pytest.mark.parametrize("name", BOX_NAMES)
def test_bad_actions_raise_value_error_naming_the_problem(name, problem):
    family = tasks.get(name)
    spoil, pattern = BAD_ACTIONS[problem]
    venv = family.make_vec(mixed_tasks(family, 2), seed=0)
    venv.reset()
    env = family.make_env()
    env.reset(seed=0)
    good = zero_actions(venv.action_space)
    with pytest.raises(ValueError, match=f"(?i){pattern}"):
        venv.step(spoil(good))
    with pytest.raises(ValueError, match=f"(?i){pattern}"):
        env.step(spoil(good[0]))
    venv.step(good)
    env.step(good[0])


def test_non_finite_actions_are_refused_naming_the_envs_and_their_values():
    family = tasks.get("cheetah-vel")
    venv = family.make_vec(mixed_tasks(family, 4), seed=0)
    venv.reset()
    action = np.zeros((4, 6))
    action[1, 2] = np.nan
    action[3, 0] = -np.inf
    with pytest.raises(ValueError, match="finite") as caught:
        venv.step(action)
    message = str(caught.value)
    assert "env 1: [0.0, 0.0, nan" in message and "env 3: [-inf" in message
    assert "env 0" not in message and "env 2" not in message
    env = family.make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"finite.*\[-inf, 0.0"):
        env.step(action[3])
    venv.step(np.zeros((4, 6)))


@pytest.mark.parametrize("name", NAMES)
def test_a_closed_batched_env_refuses_every_use(name):
    family = tasks.get(name)
    venv = family.make_vec(mixed_tasks(family, 2), seed=0)
    venv.reset()
    venv.close()
    closed = r"this env was closed; make a new one with family\.make_vec\(\.\.\.\)"
    with pytest.raises(RuntimeError, match=closed):
        venv.step(zero_actions(venv.action_space))
    with pytest.raises(RuntimeError, match=closed):
        venv.reset()
    with pytest.raises(RuntimeError, match=closed):
        venv.set_tasks(mixed_tasks(family, 2))
    venv.close()  # closing again is harmless


@pytest.mark.parametrize("name", NAMES)
def test_a_closed_reference_env_refuses_to_step_or_reset(name):
    family = tasks.get(name)
    env = family.make_env()
    zero = zero_actions(env.action_space)
    env.reset(seed=0)
    env.step(zero)
    env.close()
    closed = r"this env was closed; make a new one with family\.make_env\(\.\.\.\)"
    with pytest.raises(RuntimeError, match=closed):
        env.step(zero)
    with pytest.raises(RuntimeError, match=closed):
        env.reset(seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_reference_env_refuses_to_step_before_reset(name):
    """As the batched env: after construction and after set_task (gymnasium.make's order
    check would catch only the first, and only through gymnasium.make)."""
    family = tasks.get(name)
    task_a, task_b = two_distinct_tasks(family)
    env = family.make_env(task_a).unwrapped
    zero = zero_actions(env.action_space)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(zero)
    env.reset(seed=0)
    env.step(zero)
    env.set_task(task_b)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(zero)
    env.reset()
    env.step(zero)


@pytest.mark.parametrize("seed", [-1, True, 1.5, "0", [0, 1], [0, 1, -2]])
def test_bad_seeds_raise_value_error(seed):
    family = tasks.get("point-nav")
    venv = family.make_vec(mixed_tasks(family, 3))
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, or 3 of them"):
        venv.reset(seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        family.make_vec(mixed_tasks(family, 3), seed=-5).reset()


@pytest.mark.parametrize("name", ["point-nav", "cheetah-vel", "bandit"])
@pytest.mark.parametrize("seed", [-1, True, 1.5, "0"])
def test_a_reference_env_names_a_bad_seed(name, seed):
    env = tasks.get(name).make_env()
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 or None"):
        env.reset(seed=seed)


def test_nthread_must_be_a_positive_integer():
    family = tasks.get("cheetah-vel")
    for nthread in (0, True, 1.5):
        with pytest.raises(ValueError, match="nthread"):
            family.make_vec([family.default_task], nthread=nthread)


class SpoiltPointNav(PointNavSim):
    """point-nav's simulator with one of its outputs spoilt."""

    def __init__(self, num_envs: int, spoil: str) -> None:
        super().__init__(num_envs)
        self.spoil = spoil

    def reset(self, ids, rngs):
        obs = super().reset(ids, rngs)
        return obs[:, :1] if self.spoil == "reset" else obs

    def step(self, action_NA, active_N):
        out = super().step(action_NA, active_N)
        if self.spoil == "reward":
            out.reward_N = out.reward_N[:-1]
        elif self.spoil == "terminated":
            out.terminated_N = out.terminated_N.astype(float)
        elif self.spoil == "term":
            out.terms["distance"] = out.terms["distance"][None]
        return out


@pytest.mark.parametrize(("spoil", "pattern"), [
    ("reset", r"reset 2 envs and returned observations of shape \(2, 1\); expected \(2, 2\)"),
    ("reward", r"reward_N of shape \(1,\); expected \(2,\)"),
    ("terminated", r"terminated_N of dtype float64; expected bool"),
    ("term", r"terms\['distance'\] of shape \(1, 2\); expected \(2,\)")])
def test_a_simulator_returning_wrong_arrays_is_refused_naming_them(spoil, pattern):
    family = tasks.get("point-nav")
    venv = tasks.BatchedEnv(family=family, simulator=SpoiltPointNav(2, spoil),
                            tasks=[family.default_task] * 2, horizon=5, seed=0)
    with pytest.raises(RuntimeError, match=r"simulator of 'point-nav' \(SpoiltPointNav\)"
                                           rf".* {pattern}"):
        venv.reset()
        venv.step(np.zeros((2, 2), dtype=np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_reset_option_raises_value_error(name):
    family = tasks.get(name)
    venv = family.make_vec([family.default_task], seed=0)
    with pytest.raises(ValueError, match="bogus"):
        venv.reset(options={"bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        family.make_env().reset(options={"bogus": 1})


@pytest.mark.parametrize("mask", [np.ones(3, dtype=bool), np.ones(2, dtype=np.int64),
                                  np.ones((2, 1), dtype=bool)])
def test_reset_mask_of_wrong_shape_or_dtype_raises_value_error(mask):
    family = tasks.get("cheetah-vel")
    venv = family.make_vec(mixed_tasks(family, 2), seed=0)
    venv.reset()
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": mask})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", [{"autoreset_mode": "bogus"}, {"horizon": 0}])
def test_make_vec_rejects_bad_options(name, options):
    family = tasks.get(name)
    with pytest.raises(ValueError, match=next(iter(options))):
        family.make_vec([family.default_task], **options)


# Agreement with gymnasium's Ant-v5 and HalfCheetah-v5 ---------------------------------

def test_ant_dir_physics_follows_gymnasium_ant_v5():
    family = tasks.get("ant-dir")
    env = family.make_env(family.task_from_dict({"theta": 0.0}))
    ant = gymnasium.make("Ant-v5")
    obs, _ = env.reset(seed=SEED)
    ant_obs, _ = ant.reset(seed=SEED)
    np.testing.assert_array_equal(obs[:27], ant_obs[:27])
    rng = np.random.default_rng(10)
    for t in range(50):
        action = random_actions(env.action_space, (), rng)
        obs, _, terminated, _, _ = env.step(action)
        ant_obs, _, ant_terminated, _, _ = ant.step(action)
        np.testing.assert_array_equal(obs[:27], ant_obs[:27], err_msg=f"step {t}")
        assert terminated == ant_terminated
        if terminated:
            break


def test_cheetah_vel_follows_gymnasium_half_cheetah_v5():
    family = tasks.get("cheetah-vel")
    goal = 1.5
    env = family.make_env(family.task_from_dict({"goal_velocity": goal}))
    cheetah = gymnasium.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=SEED)
    cheetah_obs, _ = cheetah.reset(seed=SEED)
    np.testing.assert_array_equal(obs, cheetah_obs)
    rng = np.random.default_rng(11)
    for t in range(50):
        action = random_actions(env.action_space, (), rng)
        obs, _, _, _, info = env.step(action)
        cheetah_obs, _, _, _, cheetah_info = cheetah.step(action)
        np.testing.assert_array_equal(obs, cheetah_obs, err_msg=f"step {t}")
        assert info["reward_velocity"] == -abs(cheetah_info["x_velocity"] - goal)


# Discrete actions: bandit ---------------------------------------------------------------

BAD_CHOICES = {
    "dtype": (lambda a: a.astype(np.float32), "integers"),
    "shape": (lambda a: a[:, None], "shape"),
    "range": (lambda a: a + 99, "in \\[0, \\d\\)"),
}


@pytest.mark.parametrize("problem", list(BAD_CHOICES))
@pytest.mark.parametrize("name", DISCRETE_NAMES)
def test_bad_discrete_actions_raise_value_error_naming_the_problem(name, problem):
    family = tasks.get(name)
    spoil, pattern = BAD_CHOICES[problem]
    venv = family.make_vec(mixed_tasks(family, 2), seed=0)
    venv.reset()
    good = zero_actions(venv.action_space)
    with pytest.raises(ValueError, match=pattern):
        venv.step(spoil(good))
    env = family.make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"index in \[0, \d\)"):
        env.step(spoil(good)[0] if problem != "shape" else good)
    venv.step(good)


def test_bandit_episodes_are_one_pull_and_rewards_follow_the_arm_means():
    family = tasks.get("bandit")
    task = family.task_from_dict({"arm_0": 0.1, "arm_1": 0.8, "arm_2": 0.5, "arm_3": 0.0,
                                  "arm_4": 1.0})
    venv = family.make_vec([task] * 2000, seed=3, autoreset_mode="disabled")
    means = []
    for arm in range(5):
        venv.reset()
        obs, reward, terminated, _, _ = venv.step(np.full(2000, arm))
        assert terminated.all() and (obs == 0).all()
        assert set(np.unique(reward)) <= {0.0, 1.0}
        means.append(reward.mean())
    np.testing.assert_allclose(means, [0.1, 0.8, 0.5, 0.0, 1.0], atol=0.04)


def test_bandit_ood_tasks_have_an_extreme_arm_and_id_tasks_none():
    family = tasks.get("bandit")
    rng = np.random.default_rng(0)
    for task in family.sample(200, "test-ood", rng):
        means = np.array(list(family.task_to_dict(task).values()))
        assert ((means < 0.1) | (means >= 0.9)).any()
    for task in family.sample(200, "test-id", rng):
        means = np.array(list(family.task_to_dict(task).values()))
        assert ((means >= 0.1) & (means < 0.9)).all()


def test_bandit_next_step_autoreset_spends_every_other_step_resetting():
    family = tasks.get("bandit")
    task = family.task_from_dict({f"arm_{i}": 1.0 for i in range(5)})  # always pays
    venv = family.make_vec([task] * 3, seed=0)
    venv.reset()
    rewards = [venv.step(np.zeros(3, dtype=np.int64))[1] for _ in range(4)]
    np.testing.assert_array_equal(rewards, [[1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0]])


def test_guessing_game_wrong_guesses_cost_one_and_the_right_one_ends_the_episode():
    family = tasks.get("guessing-game")
    task = family.task_from_dict({"label": 2, "instance": 0.25, "noise": 0.5})
    env = family.make_env(task)
    x, _ = env.reset(seed=0)
    for guess, cost, done in ((0, -1.0, False), (0, -1.0, False), (2, 0.0, True)):
        obs, reward, terminated, _, _ = env.step(np.int64(guess))
        np.testing.assert_array_equal(obs, x)
        assert (reward, terminated) == (cost, done)


def test_guessing_game_trains_on_a_finite_set_and_tests_on_fresh_noisier_copies():
    family = tasks.get("guessing-game")
    rng = np.random.default_rng(0)
    train = family.sample(2000, "train", rng)
    assert len(set(train)) <= 4 * 256
    fresh = family.sample(50, "test-id", rng)
    assert not set(fresh) & set(train)
    from tasks.guessing_game import PROTOTYPES, observation

    def distance(t):
        return np.linalg.norm(observation(t.label, t.instance, t.noise) - PROTOTYPES[t.label])
    ood = family.sample(50, "test-ood", rng)
    assert np.mean([distance(t) for t in ood]) > 1.6 * np.mean([distance(t) for t in fresh])
