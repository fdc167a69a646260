"""Divergence: every exploded simulation is flagged, and nominal dynamics never are.

The contract (tasks/locomotion/transition.py): a step whose state leaves its robot's
`Bounds` is flagged diverged, terminates, earns 0 with every reward term 0, and returns a
finite observation inside the bounds; a step that is not flagged carries no huge
(|obs| or |reward| > 1e6) or non-finite number. Dynamics beyond the families' declared
spaces are set with `LocomotionSim.set_factors`, which no region check guards; the full
sweep is benchmarks/extreme_dynamics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import tasks
from tasks.locomotion.dynamics import SCALED_FIELDS, Scaling
from tasks.locomotion.robots import Robot

HUGE = 1e6
DYN_FAMILIES = {"cheetah": "cheetah-dyn", "ant": "ant-dyn"}
AXES = tuple(SCALED_FIELDS)  # mass, friction, damping, gravity, gear
EXTREMES = {"mass": (0.001, 100.0), "friction": (0.0, 100.0), "damping": (0.0, 1000.0),
            "gravity": (0.0, 10.0), "gear": (0.0, 100.0)}
ACTION_SCALES = {"uniform": None, "box-corners": 1.0, "1e3": 1e3, "1e200": 1e200}


def extreme_settings() -> np.ndarray:
    """Scale factors [S, 5]: each axis at each end of its extreme range (the others 1),
    every axis at its top, and the corner of the test-ood space from the bug report
    (every scale 0.25, gear 3.99)."""
    rows = []
    for j, axis in enumerate(AXES):
        for value in EXTREMES[axis]:
            row = np.ones(len(AXES))
            row[j] = value
            rows.append(row)
    rows.append([EXTREMES[axis][1] for axis in AXES])
    rows.append([0.25, 0.25, 0.25, 0.25, 3.99])
    return np.array(rows)


def scaled_env(robot: str, scales_S5: np.ndarray, repeats: int, seed: int):
    """A batched env of the robot's dyn family with each row of scale factors on
    `repeats` simulations, set past the family's declared space."""
    family = tasks.get(DYN_FAMILIES[robot])
    scales_N5 = np.repeat(scales_S5, repeats, axis=0)
    venv = family.make_vec([family.default_task] * len(scales_N5), seed=seed, nthread=1)
    task = {f"{axis}_scale": scales_N5[:, j] for j, axis in enumerate(AXES)}
    venv.sim.set_factors(Scaling().factors_for(venv.sim.robot, task))
    venv.reset()
    return venv


def actions(kind: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """float64 actions: uniform in the box [-1, 1], or random signs times a scale."""
    scale = ACTION_SCALES[kind]
    if scale is None:
        return rng.uniform(-1.0, 1.0, shape)
    return scale * rng.choice([-1.0, 1.0], shape)


def check_step(venv, obs, reward, terminated, info) -> tuple[int, int]:
    """(unflagged steps with a huge or non-finite number, flagged steps); asserts that
    flagged steps keep the contract."""
    diverged = info["diverged"]
    terms = np.array([v for k, v in info.items() if k.startswith("reward_")])
    with np.errstate(invalid="ignore"):
        huge = (~(np.abs(obs) <= HUGE).all(axis=1) | ~(np.abs(reward) <= HUGE)
                | ~(np.abs(terms) <= HUGE).all(axis=0))
    if diverged.any():
        bound = venv.sim.robot.bounds.observation
        assert terminated[diverged].all()
        assert (reward[diverged] == 0).all() and (terms[:, diverged] == 0).all()
        assert (np.abs(obs[diverged]) <= bound).all()
    return int((huge & ~diverged).sum()), int(diverged.sum())


@pytest.mark.parametrize("robot", list(DYN_FAMILIES))
def test_extreme_dynamics_and_actions_never_pass_a_huge_number_unflagged(robot):
    settings = extreme_settings()
    venv = scaled_env(robot, settings, repeats=len(ACTION_SCALES), seed=0)
    kind_N = np.tile(list(ACTION_SCALES), len(settings))
    rng = np.random.default_rng(1)
    unflagged, flagged = 0, 0
    for _ in range(120):
        action_NA = np.empty((venv.num_envs, venv.single_action_space.shape[0]))
        for kind in ACTION_SCALES:
            rows = kind_N == kind
            action_NA[rows] = actions(kind, action_NA[rows].shape, rng)
        obs, reward, terminated, _, info = venv.step(action_NA)
        counts = check_step(venv, obs, reward, terminated, info)
        unflagged += counts[0]
        flagged += counts[1]
    assert unflagged == 0
    assert flagged > 0, "the sweep should reach dynamics that explode"


MUJOCO_FAMILIES = ["cheetah-vel", "cheetah-dir", "cheetah-gait", "cheetah-dyn", "ant-dir",
                   "ant-dyn", "ant-crippled"]


@pytest.mark.parametrize("name", MUJOCO_FAMILIES)
def test_nominal_dynamics_never_flag_divergence(name):
    """Uniform actions, box corners and periodic full-strength strokes (the most vigorous
    behaviour a trained policy shows), on the family's train tasks with every scale
    factor at 1."""
    family = tasks.get(name)
    task_list = family.sample(8, "train", np.random.default_rng(0))
    if "mass_scale" in family.task_to_dict(task_list[0]):
        task_list = [family.default_task] * 8  # the centre of the ID box: every factor 1
    venv = family.make_vec(task_list * 3, seed=0, nthread=1)
    venv.reset()
    rng = np.random.default_rng(2)
    size = venv.single_action_space.shape[0]
    frequency = rng.uniform(0.5, 4.0, (8, size))  # Hz
    phase = rng.uniform(0.0, 2 * np.pi, (8, size))
    dt = venv.sim.robot.dt
    for t in range(300):
        strokes = np.sign(np.sin(2 * np.pi * frequency * t * dt + phase))
        action = np.concatenate([rng.uniform(-1, 1, (8, size)),
                                 rng.choice([-1.0, 1.0], (8, size)), strokes])
        *_, info = venv.step(action.astype(np.float32))
        assert not info["diverged"].any(), f"{name} step {t}"


@pytest.mark.parametrize(("name", "field", "beyond"), [
    ("cheetah-vel", "qpos", "position"), ("cheetah-vel", "qvel", "velocity"),
    ("ant-dir", "qpos", "position"), ("ant-dir", "qvel", "velocity")])
def test_a_state_beyond_the_bounds_is_flagged_alike_by_both_envs(name, field, beyond):
    """x (position or velocity) set to twice its bound, which MuJoCo (whose own limit is
    1e10) lets pass: both envs flag the step, pay 0 and observe the same finite numbers;
    the other simulations carry on unflagged."""
    family = tasks.get(name)
    task = family.default_task
    venv = family.make_vec([task] * 3, seed=5)  # env i is seeded 5 + i
    env = family.make_env(task)
    venv.reset()
    env.reset(seed=5)
    bound = getattr(venv.sim.robot.bounds, beyond)
    venv.sim.batch.bind(field)[0, 0] = 2 * bound
    getattr(env.unwrapped.data, field)[0] = 2 * bound
    action = np.zeros((3, venv.single_action_space.shape[0]), dtype=np.float32)
    obs, reward, terminated, _, info = venv.step(action)
    ref_obs, ref_reward, ref_terminated, _, ref_info = env.step(action[0])
    assert info["diverged"].tolist() == [True, False, False]
    assert terminated[0] and reward[0] == 0.0
    assert ref_info["diverged"] and ref_terminated and ref_reward == 0.0
    assert all(v == 0.0 for k, v in ref_info.items() if k.startswith("reward_"))
    np.testing.assert_allclose(obs[0], ref_obs, rtol=0, atol=1e-8)
    assert np.isfinite(obs).all()
    obs, _, _, _, info = venv.step(action)  # the next step resets the diverged env
    assert not info["diverged"].any()
    assert (np.abs(obs) < 100).all()


def test_a_robot_must_declare_its_bounds():
    with pytest.raises(TypeError, match=r"robot Unbounded must declare its physical bounds"):
        class Unbounded(Robot):
            xml_file = "half_cheetah.xml"
