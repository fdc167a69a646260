"""Tests for tasks.family and the built-in catalog: splits, task sampling and validation."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pickle

import gymnasium
import numpy as np
import pytest

import tasks
from tasks.family import SPLITS, TaskFamily, combine_splits
from tasks.locomotion.rewards import TargetVelocity
from tasks.locomotion.robots import CHEETAH
from tasks.regions import Param, Region, box, choice

BUILTIN = ["point-nav", "cheetah-vel", "cheetah-dir", "cheetah-gait", "cheetah-dyn",
           "cheetah-vel+dyn", "cheetah-distract", "ant-dir", "ant-dyn", "ant-crippled"]
WITH_OOD = [name for name in BUILTIN if name != "cheetah-dir"]
SCALES = ["mass_scale", "friction_scale", "damping_scale", "gravity_scale", "gear_scale"]
TEST_FAMILY = "test-cheetah-slow"
TOY_PARAMS = (Param("x", 0.0, 3.0),)


def _dummy(*args, **kwargs):
    raise AssertionError("the env factory must not be called")


def _family(splits, params=None, name="test-toy"):
    return TaskFamily(name=name, params=params or TOY_PARAMS, splits=splits, horizon=10,
                      make_vec=_dummy, make_env=_dummy)


def _values(family, task):
    return family.task_to_dict(task)


def _in_id_scale_range(value):
    return 0.5 <= value < 2.0


@pytest.fixture(params=BUILTIN)
def family(request):
    return tasks.get(request.param)


@pytest.fixture(params=WITH_OOD)
def ood_family(request):
    return tasks.get(request.param)


@pytest.fixture(scope="module")
def registered_family():
    family = tasks.locomotion_family(
        name=TEST_FAMILY, robot=CHEETAH, reward=TargetVelocity(train=(0.0, 1.0), ood=(1.0, 2.0)),
        horizon=50, doc="slow target velocities, for tests")
    tasks.register(family)
    return family


# Registry ---------------------------------------------------------------------------


def test_names_lists_the_builtin_families():
    assert set(BUILTIN) <= set(tasks.names())


@pytest.mark.parametrize("name", BUILTIN)
def test_get_returns_the_family_of_that_name(name):
    family = tasks.get(name)
    assert isinstance(family, TaskFamily)
    assert family.name == name
    assert tasks.get(name) is family


def test_get_unknown_name_raises_listing_known_names():
    with pytest.raises(ValueError, match="no-such-family") as excinfo:
        tasks.get("no-such-family")
    for name in BUILTIN:
        assert repr(name) in str(excinfo.value)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_families_are_registered_with_gymnasium(name):
    spec = gymnasium.spec(tasks.env_id(name))
    assert spec.max_episode_steps == tasks.get(name).horizon


def test_env_id_replaces_plus_with_underscore():
    assert tasks.env_id("cheetah-vel+dyn") == "fewshot/cheetah-vel_dyn-v0"
    assert tasks.get("cheetah-vel+dyn").env_id == "fewshot/cheetah-vel_dyn-v0"
    assert gymnasium.spec("fewshot/cheetah-vel_dyn-v0") is not None


def test_register_rejects_a_duplicate_name():
    original = tasks.get("cheetah-vel")
    with pytest.raises(ValueError, match=r"cheetah-vel.*already registered"):
        tasks.register(original)
    twin = _family({"train": box(x=(0.0, 1.0))}, name="cheetah-vel")
    with pytest.raises(ValueError, match=r"cheetah-vel.*already registered"):
        tasks.register(twin)
    assert tasks.get("cheetah-vel") is original


def test_register_rejects_what_is_not_a_family():
    with pytest.raises(ValueError, match="TaskFamily"):
        tasks.register("cheetah-vel")


def test_registered_family_is_listed_and_gettable(registered_family):
    assert TEST_FAMILY in tasks.names()
    assert tasks.get(TEST_FAMILY) is registered_family
    assert registered_family.env_id == f"fewshot/{TEST_FAMILY}-v0"


def test_registered_family_is_made_by_gymnasium(registered_family):
    env = gymnasium.make(registered_family.env_id)
    try:
        assert env.unwrapped.family is registered_family
        assert env.unwrapped.task == registered_family.default_task
        assert registered_family.default_task.goal_velocity == pytest.approx(0.5)
    finally:
        env.close()


def test_registered_family_takes_a_task_through_gymnasium_make(registered_family):
    task = registered_family.task_from_dict({"goal_velocity": 1.5})
    env = gymnasium.make(registered_family.env_id, task=task)
    try:
        assert env.unwrapped.task == task
    finally:
        env.close()


def test_gymnasium_make_keeps_the_env_spec(registered_family):
    env = gymnasium.make(registered_family.env_id)
    try:
        assert env.spec is not None
        assert env.spec.id == registered_family.env_id
        assert env.spec.max_episode_steps == registered_family.horizon
    finally:
        env.close()


def test_registered_family_has_its_declared_splits(registered_family):
    assert registered_family.split_of(registered_family.task_from_dict(
        {"goal_velocity": 0.99})) == ["train", "test-id"]
    assert registered_family.split_of(registered_family.task_from_dict(
        {"goal_velocity": 1.0})) == ["test-ood"]


# Every family -----------------------------------------------------------------------


def test_splits_are_known_and_include_train_and_test_id(family):
    assert set(family.splits) <= set(SPLITS)
    assert "train" in family.splits
    assert "test-id" in family.splits


def test_ood_region_does_not_intersect_train(ood_family):
    assert "test-ood" in ood_family.splits
    assert not ood_family.region("test-ood").intersects(ood_family.region("train"))


@pytest.mark.parametrize("split", ["train", "test-id"])
def test_in_distribution_samples_are_in_train_and_not_ood(family, split):
    for task in family.sample(300, split, np.random.default_rng(10)):
        where = family.split_of(task)
        assert "train" in where
        assert "test-id" in where
        assert "test-ood" not in where


def test_ood_samples_are_in_ood_and_not_train(ood_family):
    for task in ood_family.sample(300, "test-ood", np.random.default_rng(11)):
        assert ood_family.split_of(task) == ["test-ood"]


def test_default_task_is_in_the_training_region(family):
    assert "train" in family.split_of(family.default_task)


def test_task_fields_are_the_params_in_order(family):
    task = family.sample(1, "train", np.random.default_rng(12))[0]
    assert dataclasses.is_dataclass(task)
    assert [f.name for f in dataclasses.fields(task)] == [p.name for p in family.params]


def test_tasks_are_frozen(family):
    task = family.sample(1, "train", np.random.default_rng(13))[0]
    name = family.params[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(task, name, getattr(task, name))


def test_task_values_are_plain_numbers(family):
    for task in family.sample(20, "train", np.random.default_rng(14)):
        for p in family.params:
            value = getattr(task, p.name)
            assert type(value) is (int if p.is_discrete else float)


def test_tasks_are_hashable_and_equal_by_value(family):
    task = family.sample(1, "train", np.random.default_rng(15))[0]
    copy = family.task_from_dict(dict(_values(family, task)))
    assert copy is not task
    assert copy == task
    assert hash(copy) == hash(task)
    assert len({task, copy}) == 1


def test_tasks_with_different_values_are_not_equal(family):
    default = family.default_task
    others = [t for t in family.sample(50, "train", np.random.default_rng(16))
              if _values(family, t) != _values(family, default)]
    assert others
    assert all(t != default for t in others)


def test_task_dict_round_trips_through_json_exactly(family):
    splits = [s for s in ("train", "test-ood") if s in family.splits]
    for split in splits:
        for task in family.sample(50, split, np.random.default_rng(17)):
            values = _values(family, task)
            restored = json.loads(json.dumps(values))
            assert restored == values
            assert family.task_from_dict(restored) == task


def test_sample_is_deterministic_per_seed(family):
    a = family.sample(50, "train", np.random.default_rng(18))
    b = family.sample(50, "train", np.random.default_rng(18))
    c = family.sample(50, "train", np.random.default_rng(19))
    assert a == b
    assert a != c


def test_sample_returns_n_tasks_of_the_family(family):
    sampled = family.sample(np.int64(7), "train", np.random.default_rng(20))
    assert len(sampled) == 7
    assert all(isinstance(t, family.task_type) for t in sampled)


# Declared splits of the catalog -----------------------------------------------------


def _sample_values(name, split, n, seed):
    family = tasks.get(name)
    return [_values(family, t) for t in family.sample(n, split, np.random.default_rng(seed))]


def test_point_nav_train_goals_are_in_the_inner_square():
    assert [p.name for p in tasks.get("point-nav").params] == ["goal_x", "goal_y"]
    for v in _sample_values("point-nav", "train", 1000, 21):
        assert -0.5 <= v["goal_x"] < 0.5
        assert -0.5 <= v["goal_y"] < 0.5


def test_point_nav_ood_goals_are_in_the_outer_square_outside_the_inner():
    samples = _sample_values("point-nav", "test-ood", 3000, 22)
    for v in samples:
        assert -1.0 <= v["goal_x"] < 1.0
        assert -1.0 <= v["goal_y"] < 1.0
        assert not (-0.5 <= v["goal_x"] < 0.5 and -0.5 <= v["goal_y"] < 0.5)
    # uniform on the shell (area 3): |x| >= 0.5 covers area 2; sd of the share ~0.009.
    share = np.mean([abs(v["goal_x"]) >= 0.5 for v in samples])
    assert share == pytest.approx(2 / 3, abs=0.04)


@pytest.mark.parametrize(("goal", "expected"), [
    ((0.0, 0.0), ["train", "test-id"]),
    ((-0.5, -0.5), ["train", "test-id"]),
    ((0.49, -0.5), ["train", "test-id"]),
    ((0.5, 0.0), ["test-ood"]),
    ((0.0, -0.51), ["test-ood"]),
    ((-1.0, 0.99), ["test-ood"]),
    ((1.0, 0.0), []),
])
def test_point_nav_split_boundaries(goal, expected):
    family = tasks.get("point-nav")
    task = family.task_from_dict({"goal_x": goal[0], "goal_y": goal[1]})
    assert family.split_of(task) == expected


@pytest.mark.parametrize(("velocity", "expected"), [
    (0.0, ["train", "test-id"]), (1.999, ["train", "test-id"]),
    (2.0, ["test-ood"]), (2.999, ["test-ood"]), (3.0, []),
])
def test_cheetah_vel_split_boundaries(velocity, expected):
    family = tasks.get("cheetah-vel")
    assert family.split_of(family.task_from_dict({"goal_velocity": velocity})) == expected


def test_cheetah_vel_samples_cover_the_declared_ranges():
    assert [p.name for p in tasks.get("cheetah-vel").params] == ["goal_velocity"]
    train = [v["goal_velocity"] for v in _sample_values("cheetah-vel", "train", 1000, 23)]
    ood = [v["goal_velocity"] for v in _sample_values("cheetah-vel", "test-ood", 1000, 24)]
    assert all(0.0 <= g < 2.0 for g in train)
    assert all(2.0 <= g < 3.0 for g in ood)
    assert min(train) < 0.1 and max(train) > 1.9
    assert min(ood) < 2.05 and max(ood) > 2.95


def test_cheetah_dir_has_no_ood_split():
    family = tasks.get("cheetah-dir")
    assert "test-ood" not in family.splits
    with pytest.raises(ValueError, match="test-ood"):
        family.sample(1, "test-ood", np.random.default_rng(0))


def test_cheetah_dir_trains_on_both_directions():
    directions = {v["direction"] for v in _sample_values("cheetah-dir", "train", 200, 25)}
    assert directions == {-1, 1}


@pytest.mark.parametrize(("theta", "expected"), [
    (0.0, ["train", "test-id"]),
    (1.5 * math.pi - 1e-9, ["train", "test-id"]),
    (1.5 * math.pi, ["test-ood"]),
    (2.0 * math.pi - 1e-9, ["test-ood"]),
    (2.0 * math.pi, []),
])
def test_ant_dir_split_boundaries(theta, expected):
    family = tasks.get("ant-dir")
    assert family.split_of(family.task_from_dict({"theta": theta})) == expected


def test_ant_dir_samples_are_in_the_declared_quadrants():
    for v in _sample_values("ant-dir", "train", 1000, 26):
        assert 0.0 <= v["theta"] < 1.5 * math.pi
    for v in _sample_values("ant-dir", "test-ood", 1000, 27):
        assert 1.5 * math.pi <= v["theta"] < 2.0 * math.pi


def _gait_param():
    (param,) = tasks.get("cheetah-gait").params
    return param


def test_cheetah_gait_ood_gait_is_hop():
    param = _gait_param()
    hop = param.values[param.labels.index("hop")]
    assert {v["gait"] for v in _sample_values("cheetah-gait", "test-ood", 200, 28)} == {hop}


@pytest.mark.parametrize("split", ["train", "test-id"])
def test_cheetah_gait_in_distribution_gaits_are_the_other_four(split):
    param = _gait_param()
    others = {v for v, label in zip(param.values, param.labels, strict=True) if label != "hop"}
    assert len(others) == 4
    assert {v["gait"] for v in _sample_values("cheetah-gait", split, 300, 29)} == others


def test_ant_crippled_legs_per_split():
    assert {v["crippled_leg"] for v in _sample_values("ant-crippled", "train", 200, 30)} == {
        0, 1, 2}
    assert {v["crippled_leg"] for v in _sample_values("ant-crippled", "test-ood", 50, 31)} == {3}


@pytest.mark.parametrize("name", ["cheetah-dyn", "ant-dyn"])
def test_dyn_params_are_the_five_log_scales(name):
    params = tasks.get(name).params
    assert [p.name for p in params] == SCALES
    assert all(p.scale == "log" for p in params)


@pytest.mark.parametrize("name", ["cheetah-dyn", "ant-dyn"])
def test_dyn_id_factors_are_all_in_the_id_range(name):
    for v in _sample_values(name, "train", 500, 32):
        assert all(_in_id_scale_range(v[s]) for s in SCALES)


@pytest.mark.parametrize("name", ["cheetah-dyn", "ant-dyn"])
def test_dyn_ood_factors_leave_the_id_range(name):
    for v in _sample_values(name, "test-ood", 500, 33):
        assert all(0.25 <= v[s] < 4.0 for s in SCALES)
        assert not all(_in_id_scale_range(v[s]) for s in SCALES)


@pytest.mark.parametrize("name", ["cheetah-dyn", "ant-dyn"])
def test_dyn_id_factors_are_log_uniform(name):
    samples = _sample_values(name, "train", 2000, 34)
    # log factor uniform on [-ln 2, ln 2]: median sd ~ ln 4 / (2 sqrt 2000) ~ 0.016.
    for s in SCALES:
        assert np.median([v[s] for v in samples]) == pytest.approx(1.0, abs=0.1)


def test_cheetah_vel_dyn_params_are_velocity_then_scales():
    assert [p.name for p in tasks.get("cheetah-vel+dyn").params] == ["goal_velocity", *SCALES]


def test_cheetah_vel_dyn_train_is_in_distribution_in_every_part():
    for v in _sample_values("cheetah-vel+dyn", "train", 500, 35):
        assert 0.0 <= v["goal_velocity"] < 2.0
        assert all(_in_id_scale_range(v[s]) for s in SCALES)


def test_cheetah_vel_dyn_ood_is_ood_in_some_part():
    samples = _sample_values("cheetah-vel+dyn", "test-ood", 4000, 36)
    fast = [v["goal_velocity"] >= 2.0 for v in samples]
    odd_dynamics = [not all(_in_id_scale_range(v[s]) for s in SCALES) for v in samples]
    assert all(f or d for f, d in zip(fast, odd_dynamics, strict=True))
    assert any(f and not d for f, d in zip(fast, odd_dynamics, strict=True))
    assert any(d and not f for f, d in zip(fast, odd_dynamics, strict=True))
    # volume of (v in [2,3)) x anywhere is L^5 (L = ln 16), of (v in [0,2)) x shell is
    # 2 (L^5 - (L/2)^5); the fast share is 1 / (1 + 2 * 31/32) ~ 0.340, sd ~ 0.0075.
    assert np.mean(fast) == pytest.approx(1 / (1 + 2 * 31 / 32), abs=0.04)


# Construction checks ----------------------------------------------------------------


def test_family_with_ood_touching_train_builds():
    family = _family({"train": box(x=(0.0, 2.0)), "test-ood": box(x=(2.0, 3.0))})
    assert set(family.splits) == {"train", "test-id", "test-ood"}
    assert family.region("test-id") is family.region("train")


def test_family_with_ood_intersecting_train_fails_to_build():
    with pytest.raises(ValueError, match="test-ood"):
        _family({"train": box(x=(0.0, 2.0)), "test-ood": box(x=(1.0, 3.0))})


def test_family_with_split_outside_declared_space_fails_to_build():
    with pytest.raises(ValueError, match=r"'train'.*x.*declared space"):
        _family({"train": box(x=(0.0, 5.0))})


def test_family_with_discrete_split_outside_declared_values_fails_to_build():
    with pytest.raises(ValueError, match=r"'test-ood'.*leg.*declared space"):
        _family({"train": choice("leg", [0, 1]), "test-ood": choice("leg", [7])},
                params=(Param("leg", values=(0, 1, 2)),))


def test_family_with_unknown_split_fails_to_build():
    with pytest.raises(ValueError, match=r"validation.*allowed"):
        _family({"train": box(x=(0.0, 1.0)), "validation": box(x=(1.0, 2.0))})


def test_family_without_train_split_fails_to_build():
    with pytest.raises(ValueError, match="'train' split is required"):
        _family({"test-ood": box(x=(1.0, 2.0))})


def test_family_with_split_over_other_params_fails_to_build():
    with pytest.raises(ValueError, match=r"'train' names \['y'\]"):
        _family({"train": box(y=(0.0, 1.0))})


def test_family_with_repeated_param_names_fails_to_build():
    with pytest.raises(ValueError, match="repeat"):
        _family({"train": box(x=(0.0, 1.0))}, params=(Param("x", 0.0, 3.0),
                                                     Param("x", 0.0, 3.0)))


# Bad input --------------------------------------------------------------------------


def test_sample_unknown_split_names_the_known_splits():
    with pytest.raises(ValueError, match=r"'test-odd'.*'train', 'test-id', 'test-ood'"):
        tasks.get("cheetah-vel").sample(1, "test-odd", np.random.default_rng(0))


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3", None])
def test_sample_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        tasks.get("cheetah-vel").sample(n, "train", np.random.default_rng(0))


@pytest.mark.parametrize("rng", [0, None, np.random.RandomState(0)])
def test_sample_rejects_rng_that_is_not_a_generator(rng):
    with pytest.raises(ValueError, match=r"rng must be a numpy\.random\.Generator"):
        tasks.get("cheetah-vel").sample(1, "train", rng)


def test_task_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown \['speed'\]"):
        tasks.get("cheetah-vel").task_from_dict({"goal_velocity": 1.0, "speed": 2.0})


def test_task_from_dict_rejects_missing_keys():
    with pytest.raises(ValueError, match=r"missing \['goal_y'\]"):
        tasks.get("point-nav").task_from_dict({"goal_x": 0.1})


def test_task_from_dict_rejects_a_non_mapping():
    with pytest.raises(ValueError, match="goal_velocity"):
        tasks.get("cheetah-vel").task_from_dict([1.0])


@pytest.mark.parametrize(("name", "values", "pattern"), [
    ("cheetah-vel", {"goal_velocity": 7.0}, r"'goal_velocity'.*\[0\.0, 3\.0\]"),
    ("cheetah-vel", {"goal_velocity": True}, r"'goal_velocity'.*number"),
    ("cheetah-vel", {"goal_velocity": "1.0"}, r"'goal_velocity'.*number"),
    ("ant-crippled", {"crippled_leg": 5}, r"'crippled_leg'.*0 \(front_left_leg\)"),
    ("cheetah-gait", {"gait": 1.5}, r"'gait'.*4 \(hop\)"),
    ("ant-dir", {"theta": -0.1}, r"'theta'.*\[0\.0, "),
])
def test_task_from_dict_rejects_out_of_range_values(name, values, pattern):
    with pytest.raises(ValueError, match=pattern):
        tasks.get(name).task_from_dict(values)


def _other_task():
    return tasks.get("point-nav").task_from_dict({"goal_x": 0.1, "goal_y": 0.2})


def test_check_task_rejects_a_task_of_another_family():
    with pytest.raises(ValueError, match=r"'cheetah-vel' takes CheetahVelTask.*goal_velocity"):
        tasks.get("cheetah-vel").check_task(_other_task())


def test_check_task_rejects_a_same_shaped_task_of_another_family(registered_family):
    task = tasks.get("cheetah-vel").task_from_dict({"goal_velocity": 0.5})
    with pytest.raises(ValueError, match=TEST_FAMILY):
        registered_family.check_task(task)


def test_check_task_rejects_an_out_of_range_task_built_directly():
    family = tasks.get("cheetah-vel")
    with pytest.raises(ValueError, match=r"'goal_velocity'.*\[0\.0, 3\.0\]"):
        family.check_task(family.task_type(goal_velocity=7.0))


def test_make_vec_rejects_a_task_of_another_family():
    with pytest.raises(ValueError, match=r"'cheetah-vel' takes CheetahVelTask.*goal_velocity"):
        tasks.get("cheetah-vel").make_vec([tasks.get("cheetah-vel").default_task,
                                           _other_task()])


def test_make_vec_rejects_an_out_of_range_task():
    family = tasks.get("ant-crippled")
    with pytest.raises(ValueError, match="'crippled_leg'"):
        family.make_vec([family.task_type(crippled_leg=5)])


def test_make_vec_rejects_an_unknown_option_and_lists_the_allowed_ones():
    family = tasks.get("cheetah-vel")
    with pytest.raises(ValueError, match=r"unknown options \['frame_skip'\].*'horizon'.*"
                                         r"'nthread'"):
        family.make_vec([family.default_task], frame_skip=2)


def test_make_vec_rejects_an_empty_task_list():
    with pytest.raises(ValueError, match="at least one task"):
        tasks.get("cheetah-vel").make_vec([])


def test_make_env_rejects_a_task_of_another_family():
    with pytest.raises(ValueError, match=r"'cheetah-vel' takes CheetahVelTask.*goal_velocity"):
        tasks.get("cheetah-vel").make_env(_other_task())


# describe ---------------------------------------------------------------------------


def test_describe_names_the_gait():
    family = tasks.get("cheetah-gait")
    assert "hop" in family.describe(family.task_from_dict({"gait": 4}))
    assert "hop" not in family.describe(family.task_from_dict({"gait": 0}))


def test_describe_names_every_parameter(family):
    text = family.describe(family.default_task)
    for p in family.params:
        assert f"{p.name}=" in text


# combine_splits ---------------------------------------------------------------------

A = {"train": box(a=(0.0, 1.0)), "test-ood": box(a=(1.0, 2.0))}
B = {"train": box(b=(0.0, 1.0)), "test-ood": box(b=(1.0, 3.0))}
C = {"train": choice("c", [0, 1])}
PARAMS = {"a": Param("a", 0.0, 2.0), "b": Param("b", 0.0, 3.0),
          "c": Param("c", values=(0, 1, 2))}


def _is_ood(v):
    return 1.0 <= v["a"] < 2.0 or 1.0 <= v["b"] < 3.0


def test_combined_ood_pieces_are_disjoint():
    boxes = combine_splits([A, B])["test-ood"].boxes
    assert len(boxes) == 3
    for x, y in itertools.combinations(boxes, 2):
        assert not Region((x,)).intersects(Region((y,)))


def test_combined_splits_contain_exactly_the_expected_tasks():
    splits = combine_splits([A, B])
    grid = [float(x) for x in np.arange(-0.25, 3.26, 0.25)]
    for a, b in itertools.product(grid, grid):
        v = {"a": a, "b": b}
        anywhere = 0.0 <= a < 2.0 and 0.0 <= b < 3.0
        in_train = 0.0 <= a < 1.0 and 0.0 <= b < 1.0
        assert splits["train"].contains(v) is in_train, v
        assert splits["test-ood"].contains(v) is (anywhere and _is_ood(v)), v


def test_combined_ood_samples_have_some_part_ood():
    ood = combine_splits([A, B])["test-ood"]
    values = ood.sample(4000, PARAMS, np.random.default_rng(40))
    points = [{"a": values["a"][i], "b": values["b"][i]} for i in range(4000)]
    assert all(_is_ood(v) and 0 <= v["a"] < 2 and 0 <= v["b"] < 3 for v in points)
    # uniform on an area of 2 * 3 - 1 = 5: a >= 1 covers area 3; sd of the share ~0.008.
    assert np.mean([v["a"] >= 1.0 for v in points]) == pytest.approx(3 / 5, abs=0.04)
    assert np.mean([v["a"] < 1.0 for v in points]) == pytest.approx(2 / 5, abs=0.04)


def test_combined_train_is_the_product_of_trains():
    train = combine_splits([A, B])["train"]
    values = train.sample(500, PARAMS, np.random.default_rng(41))
    assert np.all((values["a"] >= 0) & (values["a"] < 1))
    assert np.all((values["b"] >= 0) & (values["b"] < 1))


@pytest.mark.parametrize("parts", [[C, A], [A, C]])
def test_part_without_ood_contributes_only_its_train_region(parts):
    splits = combine_splits(parts)
    ood = splits["test-ood"]
    assert ood.contains({"a": 1.5, "c": 0})
    assert ood.contains({"a": 1.5, "c": 1})
    assert not ood.contains({"a": 1.5, "c": 2})
    assert not ood.contains({"a": 0.5, "c": 0})
    values = ood.sample(500, PARAMS, np.random.default_rng(42))
    assert set(np.unique(values["c"])) == {0.0, 1.0}
    assert np.all(values["a"] >= 1.0)


def test_combined_splits_without_any_ood_have_no_ood_split():
    splits = combine_splits([C, {"train": box(a=(0.0, 1.0))}])
    assert set(splits) == {"train"}


def test_combine_splits_ignores_parts_without_parameters():
    assert combine_splits([{}, A, {}]).keys() == combine_splits([A]).keys()
    assert combine_splits([{}, A])["test-ood"].contains({"a": 1.5})


@pytest.mark.parametrize("name", BUILTIN)
def test_tasks_pickle_by_family_name_and_values(name):
    family = tasks.get(name)
    sampled = family.sample(3, "train", np.random.default_rng(0))
    restored = pickle.loads(pickle.dumps(sampled))
    assert restored == sampled
    assert all(type(t) is family.task_type for t in restored)
