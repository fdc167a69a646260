"""Property-based tests of the boundaries: run configs, family options, task parameters,
task-set files and regions.

Whatever the input, the answer is a valid object or a ValueError (ConfigError, TooLargeError)
whose message names what is wrong: the config field, the family option, the task
parameter, the task-set file and entry. Never a TypeError, KeyError, MemoryError,
OverflowError or RecursionError from deep inside. Every test is derandomized, so CI sees
the same examples each run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

import tasks
from fewshot import registry
from fewshot.run.config import COMMON, V1_SHARED, RunConfig, from_dict, to_dict
from tasks.regions import Interval, Param, Region, box, choice, product, shell, union
from tasks.resources import TooLargeError


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def outcome(label: str) -> None:
    """Count an outcome (shown by pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(label)


ALGOS = ["maml", "rl2", "ppo", "oracle", "dqn"]
FAMILIES = tasks.names()  # the built-in ones: other test modules register more
POINT_NAV = tasks.get("point-nav")
NUMPY_FAMILIES = ["point-nav", "bandit", "guessing-game"]

# Each kind of bad input by name: the rows of the reliability table.
BAD = {
    "true": True, "false": False, "float for an integer": 2.5, "NaN": math.nan,
    "inf": math.inf, "-inf": -math.inf, "negative": -1, "zero": 0, "huge int": 10**30,
    "int past 64 bits": 2**63, "int before -64 bits": -(2**63) - 1,
    "int too large for a float": 10**400, "huge float": 1e308,
    "tiny float": 5e-324, "negative zero": -0.0, "numeric string": "3", "empty string": "",
    "null": None, "list": [1], "nested list": [[1, [2]]], "empty mapping": {},
    "mapping": {"a": 1}, "numpy int": np.int64(3), "numpy float": np.float64(0.5),
}
EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 1e-300, 1.0, math.nextafter(1.0, 2.0), 0.5, -1.0,
               1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan]

numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=10**15, max_value=10**40), st.integers(max_value=-(10**15)),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGE_FLOATS))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
yaml_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
bad_values = st.one_of(st.sampled_from(list(BAD.values())), yaml_like)


# Run configs ----------------------------------------------------------------------------

def section_fields(algo: str) -> list[str]:
    return [f.name for f in dataclasses.fields(registry.get(algo).config)]


FIELDS = [(algo, name) for algo in ALGOS for name in COMMON if name != "imports"] + \
         [(algo, f"{algo}.{name}") for algo in ALGOS for name in section_fields(algo)]


def config_of(algo: str, field: str, value: object) -> dict:
    """A version-2 config of `algo` with one field (dotted for the section) set."""
    if "." in field:
        name = field.split(".", 1)[1]
        return {"version": 2, "algo": algo, algo: {name: value}}
    return {"version": 2, "algo": algo, field: value} if field != "algo" else \
        {"version": 2, "algo": value}


def config_or_error(values: object) -> RunConfig | ValueError:
    """from_dict's answer: a RunConfig, or the ValueError it raised (any other exception
    fails the test)."""
    try:
        config = from_dict(values)
    except ValueError as error:
        outcome(f"refused: {type(error).__name__}")
        return error
    outcome("accepted")
    return config


def assert_round_trips(config: RunConfig) -> None:
    again = from_dict(yaml.safe_load(yaml.safe_dump(to_dict(config))))
    assert again == config and to_dict(again) == to_dict(config)


def test_every_kind_of_bad_value_in_every_field_is_named():
    """The whole table: each field of RunConfig and of each algorithm's section, with each
    kind of bad value."""
    for algo, field in FIELDS:
        for kind, value in BAD.items():
            answer = config_or_error(config_of(algo, field, value))
            if isinstance(answer, RunConfig):
                assert_round_trips(answer)
            else:
                assert field in str(answer), (algo, field, kind, str(answer))


@examples(600)
@given(st.sampled_from(FIELDS), bad_values)
def test_any_value_of_a_field_gives_a_config_or_names_the_field(algo_field, value):
    algo, field = algo_field
    answer = config_or_error(config_of(algo, field, value))
    if isinstance(answer, RunConfig):
        assert_round_trips(answer)
    else:
        assert field in str(answer), str(answer)


config_keys = st.one_of(st.sampled_from([*COMMON, "version", *ALGOS, *V1_SHARED]),
                        st.text(max_size=6), st.integers(-3, 3)).filter(
                            lambda k: k != "imports")  # imports would import modules


@examples(400)
@given(st.one_of(yaml_like, st.dictionaries(config_keys, bad_values, max_size=6)))
def test_any_document_gives_a_config_or_an_error_about_the_config(document):
    """Random documents, in the version-2 layout or the version-1 one (shared learning
    settings at the top, which are migrated)."""
    answer = config_or_error(document)
    if isinstance(answer, RunConfig):
        assert_round_trips(answer)
    else:
        assert "config" in str(answer), str(answer)


@examples(40)
@given(st.one_of(
    st.sampled_from([None, "mod", 3, {"a": 1}, [None], [3], [""], ["  "], [["x"]]]),
    st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True).map(lambda s: f"no_such_plugin_{s}"),
             min_size=1, max_size=2)))
def test_bad_imports_are_named(imports):
    answer = config_or_error({"version": 2, "imports": imports})
    assert isinstance(answer, ValueError) and "imports" in str(answer), answer


VALID_STRINGS = {"activation": ["tanh", "relu"], "outer": ["trpo", "ppo"],
                 "catastrophe_outcome": ["catastrophe", "success"]}


def valid_value(name: str, kind: typing.Any) -> st.SearchStrategy:
    """A value every algorithm accepts for a field of this name and type."""
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(1, 1000)
    if kind is float:
        return st.floats(0.01, 0.99)
    if kind is str:
        return st.sampled_from(VALID_STRINGS[name])
    return st.lists(st.integers(1, 256), min_size=1, max_size=3)  # hidden_sizes


@st.composite
def valid_configs(draw: st.DrawFn) -> dict:
    algo = draw(st.sampled_from(ALGOS))
    family = draw(st.sampled_from(FAMILIES))
    options = ({"train_instances": draw(st.integers(1, 32))}
               if family == "guessing-game" and draw(st.booleans()) else {})
    hints = typing.get_type_hints(registry.get(algo).config)
    section = {name: draw(valid_value(name, hints[name])) for name in section_fields(algo)
               if draw(st.booleans())}
    if "buffer_size" in section:  # dqn: no more transitions awaited than the buffer keeps
        section["learning_starts"] = min(section.get("learning_starts", 1000),
                                         section["buffer_size"])
    if "fisher_subsample" in section:  # maml: every n-th episode, of those there are
        section["fisher_subsample"] = min(section["fisher_subsample"],
                                          section.get("episodes_per_task", 20))
    return {"version": 2, "algo": algo, "family": family, "family_options": options,
            "seed": draw(st.integers(0, 2**63 - 1)), "iterations": draw(st.integers(1, 10**9)),
            "horizon": draw(st.none() | st.integers(1, 10**4)),
            "checkpoint_every": draw(st.integers(1, 100)),
            "nthread": (draw(st.none() | st.integers(1, 64))
                        if "nthread" in tasks.get(family).vec_options() else None),
            "torch_threads": draw(st.integers(1, 8)), "update_threads": draw(st.integers(1, 8)),
            "imports": [], algo: section}


@examples(60)
@given(valid_configs())
def test_a_valid_config_round_trips_through_yaml_unchanged(values):
    config = from_dict(values)
    resolved = dict(tasks.get(values["family"], **values["family_options"]).options)
    assert to_dict(config) == {**values, "family_options": resolved,  # with the defaults
                               values["algo"]: dataclasses.asdict(config.algo_config)}
    assert_round_trips(config)


def test_a_negative_seed_is_named():
    with pytest.raises(ValueError, match=r"config field seed must be an integer >= 0, got -1"):
        from_dict({"version": 2, "seed": -1})


# Family options ---------------------------------------------------------------------------

option_values = st.one_of(st.sampled_from(list(BAD.values())), st.integers(-10, 64),
                          st.integers(10**15, 10**40), scalars)


@st.composite
def family_and_options(draw: st.DrawFn) -> tuple[str, dict]:
    name = draw(st.sampled_from(FAMILIES))
    keys = st.one_of(st.sampled_from(sorted(tasks.options(name)) or ["none"]),
                     st.from_regex(r"[a-z_]{1,10}", fullmatch=True))
    return name, draw(st.dictionaries(keys, option_values, max_size=3))


@examples(150)
@given(family_and_options())
def test_family_options_give_a_family_or_name_the_option(name_options):
    name, options = name_options
    try:
        family = tasks.get(name, **options)
    except ValueError as error:
        outcome(f"refused: {type(error).__name__}")
        message = str(error)
        assert repr(name) in message
        unknown = sorted(set(options) - set(tasks.options(name)))
        if unknown:
            assert f"has no options {unknown}; its options: " in message
        else:  # some option's value: named, with what it allows (or the memory it needs)
            assert any(f"option {o}" in message for o in options), message
            assert isinstance(error, TooLargeError) or "must be" in message, message
    else:
        assert family.name == name
        assert {k: family.options[k] for k in options} == options


@examples(30)
@given(st.one_of(st.text(max_size=12), bad_values))
def test_an_unknown_family_name_is_refused_listing_the_known_ones(name):
    if name in tasks.names():
        return
    with pytest.raises(ValueError, match=re.escape(f"known families: {tasks.names()}")):
        tasks.get(name)


def nothing(*args: object, **kwargs: object) -> None:
    raise AssertionError("no env is built")


FAMILY_ARGUMENTS = {
    "name": "line", "params": [Param("x", 0.0, 1.0)], "splits": {"train": box(x=(0.0, 1.0))},
    "horizon": 5, "make_vec": nothing, "make_env": nothing, "doc": "", "default_task": None,
    "outcomes": (), "oracle": None}


@examples(150)
@given(st.sampled_from(sorted(FAMILY_ARGUMENTS)),
       st.one_of(bad_values, st.sampled_from([[1.0], ["x"], {"train": 1}, {"test": None},
                                               "success", ("a b",), ("a", "a"), "a b", "+"])))
def test_a_family_is_built_or_names_the_bad_argument(argument, value):
    """What a plugin gives TaskFamily: each argument replaced by something else."""
    try:
        family = tasks.TaskFamily(**{**FAMILY_ARGUMENTS, argument: value})
    except ValueError as error:
        outcome("refused")
        message = str(error)
        assert argument in message or (argument == "name" and "family's name" in message) \
            or "split" in message or "task parameter" in message, message
    else:
        outcome("built")
        assert family.sample(2, "train", np.random.default_rng(0))


OPTION_TYPES = {"an integer": int, "a finite number": float, "true or false": bool,
                "a string": str, "one of ['run', 'hop']": typing.Literal["run", "hop"]}


@examples(150)
@given(st.sampled_from(sorted(OPTION_TYPES)), st.one_of(bad_values, st.sampled_from(
    ["run", "hop", "Run"])))
def test_an_option_of_each_type_takes_its_values_or_says_what_it_allows(allowed, value):
    option = tasks.Option(name="speed", type=OPTION_TYPES[allowed], default=None)
    try:
        checked = option.check("toy", value)
    except ValueError as error:
        assert f"family 'toy': option speed must be {allowed}, got" in str(error)
    else:
        assert type(checked) in (int, float, bool, str)
        assert math.isfinite(checked) if isinstance(checked, float) else True


def test_guessing_game_refuses_more_training_instances_than_fit_in_memory():
    with pytest.raises(TooLargeError, match=r"option train_instances=10{30} needs about .* "
                                       "available"):
        tasks.get("guessing-game", train_instances=10**30)


# Task parameters ----------------------------------------------------------------------------

@st.composite
def family_and_values(draw: st.DrawFn) -> tuple[tasks.TaskFamily, dict]:
    family = tasks.get(draw(st.sampled_from(FAMILIES)))
    names = [p.name for p in family.params]
    keys = st.one_of(st.sampled_from(names), st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
    in_space = {p.name: (st.sampled_from(p.values) if p.is_discrete
                         else st.floats(p.low, p.high)) for p in family.params}
    values = draw(st.one_of(
        st.fixed_dictionaries({n: in_space[n] for n in names}),       # inside the space
        st.fixed_dictionaries({n: st.one_of(in_space[n], bad_values) for n in names}),
        st.dictionaries(keys, bad_values, max_size=len(names) + 1)))  # anything
    return family, values


def param_named(family: tasks.TaskFamily, message: str) -> bool:
    return any(repr(p.name) in message for p in family.params)


@examples(500)
@given(family_and_values())
def test_task_from_dict_gives_a_task_in_the_space_or_names_the_parameter(family_values):
    family, values = family_values
    try:
        task = family.task_from_dict(values)
    except ValueError as error:
        outcome("refused")
        message = str(error)
        if set(values) != {p.name for p in family.params}:
            assert "unknown" in message and "missing" in message, message
        else:
            assert "task parameter" in message and param_named(family, message), message
    else:
        assert family.check_task(task) is task
        assert family.task_from_dict(json.loads(json.dumps(family.task_to_dict(task)))) == task
        assert isinstance(family.split_of(task), list)
        family.describe(task)


@examples(200)
@given(family_and_values())
def test_check_task_on_a_task_built_directly_passes_or_names_the_parameter(family_values):
    family, values = family_values
    if set(values) != {p.name for p in family.params}:
        values = {p.name: values.get(p.name, 0.5) for p in family.params}
    task = family.task_type(**values)
    try:
        assert family.check_task(task) is task
    except ValueError as error:
        assert "task parameter" in str(error) and param_named(family, str(error)), str(error)


@examples(60)
@given(st.sampled_from(FAMILIES), bad_values)
def test_check_task_names_the_family_of_anything_else(name, thing):
    with pytest.raises(ValueError, match=re.escape(f"family {name!r} takes")):
        tasks.get(name).check_task(thing)


BAD_COUNTS = [0, -1, True, False, 2.5, math.nan, math.inf, "3", None, [1], np.int64(-3),
              np.float64(2.0), np.bool_(True)]


@examples(60)
@given(st.sampled_from(FAMILIES),
       st.one_of(st.sampled_from(BAD_COUNTS), st.integers(max_value=0), bad_values))
def test_sample_refuses_a_bad_count(name, n):
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1:
        return  # a valid count drawn by bad_values
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        tasks.get(name).sample(n, "train", np.random.default_rng(0))


@pytest.mark.parametrize("n", [10**12, 10**30, np.uint64(2**63)])
def test_sample_refuses_more_tasks_than_fit_in_memory(n):
    with pytest.raises(TooLargeError, match=rf"{n} tasks of 'cheetah-vel' needs about .* of "
                                       r"memory; this machine has .* available"):
        tasks.get("cheetah-vel").sample(n, "train", np.random.default_rng(0))


@examples(60)
@given(st.sampled_from(FAMILIES),
       st.one_of(st.text(max_size=10), st.sampled_from(["Train", "test_id", "ood", ""]),
                 bad_values))
def test_sample_refuses_an_unknown_split_listing_the_splits(name, split):
    family = tasks.get(name)
    if isinstance(split, str) and split in family.splits:
        return
    with pytest.raises(ValueError, match=re.escape(f"its splits are {list(family.splits)}")):
        family.sample(1, split, np.random.default_rng(0))


@examples(30)
@given(st.one_of(st.sampled_from([0, None, "seed", np.random.RandomState(0)]), bad_values))
def test_sample_refuses_an_rng_that_is_not_a_generator(rng):
    with pytest.raises(ValueError, match=r"rng must be a numpy\.random\.Generator"):
        POINT_NAV.sample(1, "train", rng)


@examples(80)
@given(st.sampled_from(FAMILIES), st.integers(1, 12), st.sampled_from([int, np.int64, np.uint8]),
       st.integers(0, 2**64 - 1), st.booleans())
def test_sampled_tasks_lie_in_their_split(name, n, integer, seed, cover):
    family = tasks.get(name)
    for split in family.splits:
        drawn = family.sample(integer(n), split, np.random.default_rng(seed), cover=cover)
        assert len(drawn) == n
        assert all(split in family.split_of(family.check_task(t)) for t in drawn)


BAD_SEEDS = [-1, -(2**63), True, 1.5, math.nan, "0", [0], np.int64(-2), np.float64(1.0)]


@examples(30)
@given(st.sampled_from(NUMPY_FAMILIES), st.one_of(st.sampled_from(BAD_SEEDS),
                                                  st.integers(max_value=-1)))
def test_a_bad_seed_is_named_by_make_vec_and_reset(name, seed):
    family = tasks.get(name)
    with pytest.raises(ValueError, match="seed must be an integer >= 0 or None"):
        family.make_vec([family.default_task], seed=seed)
    env = family.make_env()
    with pytest.raises(ValueError, match="seed must be an integer >= 0 or None"):
        env.reset(seed=seed)


@examples(20)
@given(st.sampled_from(NUMPY_FAMILIES), st.one_of(bad_values, st.just({"task": 0.5})))
def test_bad_reset_options_are_refused(name, options):
    env = tasks.get(name).make_env()
    if options in ({}, None):
        return
    with pytest.raises(ValueError, match=r"reset options|takes"):
        env.reset(options=options)


@pytest.mark.parametrize(("num_envs", "message"), [
    (0, "num_envs must be an integer >= 1"), (2.5, "num_envs must be an integer >= 1"),
    (True, "num_envs must be an integer >= 1"), (10**12, r"10{12} envs of 'point-nav' needs")])
def test_gymnasium_make_vec_refuses_a_bad_number_of_envs(num_envs, message):
    import gymnasium

    with pytest.raises(ValueError, match=message):
        gymnasium.make_vec(POINT_NAV.env_id, num_envs=num_envs)


@pytest.mark.parametrize("cover", [1, "yes", None, np.bool_(True)])
def test_sample_refuses_a_cover_that_is_not_true_or_false(cover):
    with pytest.raises(ValueError, match="cover must be true or false"):
        POINT_NAV.sample(2, "train", np.random.default_rng(0), cover=cover)


@examples(10)
@given(st.sampled_from(NUMPY_FAMILIES), st.one_of(st.integers(0, 2**63), st.none()))
def test_a_valid_seed_builds_and_resets(name, seed):
    family = tasks.get(name)
    envs = family.make_vec([family.default_task] * 2, seed=seed)
    envs.reset()
    envs.close()
    env = family.make_env()
    env.reset(seed=None if seed is None else np.uint64(seed))
    env.close()


# Task-set files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("task-sets")


def load(folder, content: str | bytes) -> dict | ValueError:
    """load_task_sets on a file of this content: its sets, or the ValueError it raised,
    which must name the file."""
    from fewshot.eval.task_sets import load_task_sets

    path = folder / "sets.json"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    try:
        sets = load_task_sets(POINT_NAV, path)
    except ValueError as error:
        assert str(path) in str(error), str(error)
        outcome("refused")
        return error
    outcome("loaded")
    return sets


goal_values = st.one_of(st.floats(-1.5, 1.5), bad_values)
goal_tasks = st.one_of(
    st.fixed_dictionaries({"goal_x": goal_values, "goal_y": goal_values}),
    st.dictionaries(st.sampled_from(["goal_x", "goal_y", "goal_z"]), goal_values),
    bad_values)
good_sets = st.dictionaries(
    st.text(min_size=1, max_size=6).filter(lambda name: name not in POINT_NAV.splits),
    st.lists(st.fixed_dictionaries({"goal_x": st.floats(-1.0, 1.0),
                                    "goal_y": st.floats(-1.0, 1.0)}), min_size=1, max_size=3),
    min_size=1, max_size=3)
set_documents = st.one_of(st.fixed_dictionaries({"family": st.just("point-nav"),
                                                 "sets": good_sets}), st.fixed_dictionaries(
    {"sets": st.dictionaries(st.one_of(st.sampled_from(["test-id", "test-ood", "train", ""]),
                                       st.text(max_size=6)),
                             st.one_of(st.lists(goal_tasks, max_size=4), bad_values),
                             max_size=3)},
    optional={"family": st.one_of(st.just("point-nav"), st.just("bandit"), bad_values),
              "family_options": st.one_of(st.just({}), bad_values), "seed": bad_values,
              "tasks": bad_values}))


@examples(400)
@given(st.one_of(set_documents, yaml_like))
def test_a_task_set_file_gives_checked_sets_or_names_the_file_and_entry(folder, document):
    answer = load(folder, json.dumps(document, default=lambda x: x.item()))  # numpy
    if isinstance(answer, ValueError):
        message = str(answer)
        if "task parameter" in message or "'point-nav' task" in message:  # about one task
            assert re.search(r"set '.*', task \d+", message), message
        return
    assert answer and all(answer.values())
    for name, task_list in answer.items():
        for task in task_list:
            POINT_NAV.check_task(task)
            if name in POINT_NAV.splits:
                assert name in POINT_NAV.split_of(task)


@examples(60)
@given(st.binary(max_size=64))
def test_any_bytes_give_sets_or_name_the_file(folder, content):
    load(folder, content)


NEAR = '{"goal_x": 0.1, "goal_y": 0.0}'
HOSTILE = {
    "not UTF-8": b'{"sets": {"near": [\xff\xfe]}}',
    "empty file": "",
    "a number too long to parse": '{"sets": {"near": [{"goal_x": ' + "1" * 5000 +
                                  ', "goal_y": 0}]}}',
    "a huge number": '{"sets": {"near": [{"goal_x": 1e400, "goal_y": 0}]}}',
    "NaN": '{"sets": {"near": [{"goal_x": NaN, "goal_y": 0}]}}',
    "-Infinity": '{"sets": {"near": [{"goal_x": -Infinity, "goal_y": 0}]}}',
    "nested too deep": "[" * 100_000 + "]" * 100_000,
    "a set named twice": f'{{"sets": {{"near": [{NEAR}], "near": [{NEAR}]}}}}',
    "a parameter given twice": '{"sets": {"near": [{"goal_x": 0.1, "goal_x": 0.2, '
                               '"goal_y": 0}]}}',
    "an empty set": '{"sets": {"near": []}}',
    "no sets": '{"sets": {}}',
    "sets and splits": f'{{"sets": {{"a": [{NEAR}]}}, "splits": {{"b": [{NEAR}]}}}}',
    "an empty set name": f'{{"sets": {{"": [{NEAR}]}}}}',
    "a task outside its split": '{"sets": {"test-ood": [{"goal_x": 0.1, "goal_y": 0}]}}',
    "a missing parameter": '{"sets": {"near": [{"goal_x": 0.1}]}}',
    "another family": f'{{"family": "bandit", "sets": {{"near": [{NEAR}]}}}}',
    "other options": f'{{"family_options": {{"x": 1}}, "sets": {{"near": [{NEAR}]}}}}',
    "a task that is a list": '{"sets": {"near": [[0.1, 0.0]]}}',
}


@pytest.mark.parametrize("content", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_task_set_files_are_refused_naming_the_file(folder, content):
    assert isinstance(load(folder, content), ValueError)


@examples(40)
@given(st.one_of(bad_values, st.dictionaries(st.text(min_size=1, max_size=4), bad_values,
                                             min_size=1, max_size=2)))
def test_check_task_sets_refuses_anything_but_named_lists_of_the_familys_tasks(task_sets):
    from fewshot.eval.task_sets import check_task_sets

    with pytest.raises(ValueError, match=r"task set|no task sets"):
        check_task_sets(POINT_NAV, task_sets)


def test_a_name_given_twice_is_refused_not_silently_merged(folder):
    error = load(folder, HOSTILE["a set named twice"])
    assert "['near'] appear more than once" in str(error)


# Regions ------------------------------------------------------------------------------------

ends = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10, 10), st.sampled_from([True, "0", None, 10**400]))
NAMES = ["x", "y", "z"]


def params_for(region: Region, *, log: bool) -> dict[str, Param]:
    """Params spanning the region: log scale where every end is positive; a parameter
    the region only holds points of is never drawn, so any Param serves."""
    params = {}
    for name in region.names:
        if all(b[name].is_point for b in region.boxes):
            params[name] = Param(name, -1.0, 1.0)
            continue
        lo = min(b[name].lo for b in region.boxes)
        hi = max(b[name].hi for b in region.boxes)
        params[name] = Param(name, lo, hi, scale="log" if log and lo > 0 else "linear")
    return params


def sample_inside(region: Region, log: bool, seed: int) -> None:
    """Samples of the region lie in it, in every box's half-open ranges."""
    values = region.sample(50, params_for(region, log=log), np.random.default_rng(seed))
    for i in range(50):
        point = {name: values[name][i] for name in region.names}
        assert region.contains(point), point


def region_or_error(build: typing.Callable[[], Region]) -> Region | None:
    try:
        region = build()
    except ValueError:
        outcome("refused")
        return None
    outcome("built")
    return region


@examples(300)
@given(st.dictionaries(st.sampled_from(NAMES), st.tuples(ends, ends), min_size=1),
       st.booleans(), st.integers(0, 2**32))
def test_a_box_of_any_ends_samples_inside_itself_or_is_refused(intervals, log, seed):
    region = region_or_error(lambda: box(**intervals))
    if region is not None:
        sample_inside(region, log, seed)


@examples(100)
@given(st.lists(ends, max_size=6), st.integers(0, 2**32))
def test_a_choice_samples_only_its_values_or_is_refused(values, seed):
    region = region_or_error(lambda: choice("c", values))
    if region is None:
        return
    assert all(region.contains({"c": v}) for v in values)
    drawn = region.sample(30, {"c": Param("c", values=tuple(range(len(values))))},
                          np.random.default_rng(seed))["c"]
    assert set(drawn.tolist()) <= set(values)


finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([e for e in EDGE_FLOATS if math.isfinite(e)]))


@examples(300)
@given(st.lists(st.one_of(st.lists(finite, min_size=4, max_size=4).map(sorted),
                          st.tuples(ends, ends, ends, ends)), min_size=1, max_size=3),
       st.booleans(), st.integers(0, 2**32))
def test_a_shell_samples_outside_its_inner_box_or_is_refused(ranges, log, seed):
    names = NAMES[:len(ranges)]
    outer = {n: (r[0], r[3]) for n, r in zip(names, ranges, strict=True)}
    inner = {n: (r[1], r[2]) for n, r in zip(names, ranges, strict=True)}
    region = region_or_error(lambda: shell(outer, inner))
    if region is None:
        return
    sample_inside(region, log, seed)
    params = params_for(region, log=False)
    values = region.sample(50, params, np.random.default_rng(seed))
    inside = box(**inner)
    for i in range(50):
        assert not inside.contains({n: values[n][i] for n in names})


grid_boxes = st.lists(st.fixed_dictionaries({
    n: st.tuples(st.integers(0, 6), st.integers(0, 3)).map(
        lambda a: Interval(float(a[0]), float(a[0] + a[1]))) for n in ("x", "y")}),
    min_size=1, max_size=8)


def pairwise_overlap(boxes_a, boxes_b) -> bool:
    return any(all(a[n].intersects(b[n]) for n in a) for a in boxes_a for b in boxes_b
               if a is not b)


@examples(500)
@given(grid_boxes, grid_boxes)
def test_disjointness_and_intersection_agree_with_comparing_every_pair(boxes_a, boxes_b):
    """Boxes on a small grid, points among them, touch and overlap often: a Region
    accepts exactly the disjoint ones, and intersects() answers as every pair does."""
    overlapping = any(pairwise_overlap([a], boxes_a[i + 1:]) for i, a in enumerate(boxes_a))
    region_a = region_or_error(lambda: Region(tuple(boxes_a)))
    assert (region_a is None) == overlapping
    region_b = region_or_error(lambda: Region(tuple(boxes_b)))
    if region_a is not None and region_b is not None:
        assert region_a.intersects(region_b) == pairwise_overlap(boxes_a, boxes_b)
        assert (region_or_error(lambda: union([region_a, region_b])) is None) == \
            region_a.intersects(region_b)


@examples(100)
@given(st.sampled_from(NAMES), ends, ends, st.sampled_from(["linear", "log", "cubic"]),
       st.one_of(st.none(), st.lists(st.one_of(st.integers(-3, 3), ends), max_size=4)),
       st.lists(bad_values, max_size=3))
def test_a_param_is_well_formed_or_refused_and_checks_values_naming_itself(
        name, low, high, scale, values, probes):
    try:
        param = Param(name, low, high, scale=scale,
                      values=None if values is None else tuple(values))
    except ValueError:
        return
    for probe in [*probes, low, high, *(values or [])]:
        try:
            checked = param.check(probe)
        except ValueError as error:
            assert f"task parameter {name!r}" in str(error)
        else:
            assert checked in param.values if param.is_discrete else \
                param.low <= checked <= param.high


def test_many_small_widths_do_not_underflow_the_volumes_to_nan():
    names = [f"p{i}" for i in range(200)]
    params = {n: Param(n, 0.0, 1.0) for n in names}
    region = union([box(**dict.fromkeys(names, (0.0, 0.01))),
                    box(**dict.fromkeys(names, (0.5, 0.52)))])
    values = region.sample(100, params, np.random.default_rng(0))
    assert all(region.contains({n: values[n][i] for n in names}) for i in range(100))
    assert np.all(values["p0"] >= 0.5)  # the second box's volume is 2**200 times larger


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Interval(0.0, math.inf), "finite ends"),
    (lambda: Interval(-1e308, 1e308), "finite ends a finite distance apart"),
    (lambda: box(x=(0.0, 1.0, 2.0)), r"range of x must be a pair of numbers"),
    (lambda: box(x="ab"), r"range of x must be a pair of numbers"),
    (lambda: choice("x", ["a", "b"]), "finite ends"),
    (lambda: shell({"x": (0.0, 1.0)}, {"x": (0.0, 1.0)}), "the shell is empty"),
    (lambda: product([box(x=(0.0, 1.0)), "y"]), "product takes Regions"),
    (lambda: Param("goal x", 0.0, 1.0), "must be a Python identifier"),
    (lambda: Param("x", values=(1, 1)), "distinct integers"),
    (lambda: Param("x", -math.inf, 0.0), "finite numbers"),
    (lambda: box(x=(0.0, 1.0)).sample(3, {}, np.random.default_rng(0)), r"missing \['x'\]"),
    (lambda: box(x=(0.0, 1.0)).sample(-1, {"x": Param("x", 0.0, 1.0)},
                                      np.random.default_rng(0)), "n must be an integer >= 0"),
    (lambda: box(x=(0.0, 1.0)).sample(10**15, {"x": Param("x", 0.0, 1.0)},
                                      np.random.default_rng(0)), "needs about"),
    (lambda: box(x=(0.0, 1.0)).contains({"y": 0.0}), r"missing \['x'\]"),
    (lambda: box(x=(0.0, 1.0)).contains({"x": "0"}), "contains takes numbers"),
])
def test_misuse_of_regions_is_refused_naming_the_problem(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# Actions ------------------------------------------------------------------------------

ACTION_FAMILIES = ["point-nav", "cheetah-vel", "ant-dir", "bandit"]
_ENVS: dict[str, object] = {}


def batched_env(name: str):
    """One 2-simulation env per family, reused across examples (reset each time)."""
    if name not in _ENVS:
        family = tasks.get(name)
        _ENVS[name] = family.make_vec([family.default_task] * 2, seed=0)
    return _ENVS[name]


ACTION_DTYPES = st.sampled_from([np.float64] * 4 + [np.float32, np.int64, np.int32, np.bool_,
                                                  np.uint8, object])
ACTION_VALUES = st.one_of(st.floats(-2.0, 2.0), st.floats(-1e3, 1e3),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.sampled_from([1e200, -1e200, 1e3, 5e-324, 0.0, -0.0, 1.0]),
                          st.integers(-10**20, 10**20))


@examples(400)
@given(name=st.sampled_from(ACTION_FAMILIES),
       shape=st.sampled_from(["right"] * 5 + ["one short", "one more", "flat", "scalar",
                                              "3d"]),
       dtype=ACTION_DTYPES, values=st.lists(ACTION_VALUES, min_size=1, max_size=24))
def test_any_action_is_stepped_safely_or_refused_naming_it(name, shape, dtype, values):
    """A step either refuses the action with a ValueError that says what is wrong with
    it, or returns finite observations and rewards that are not huge unless flagged."""
    envs = batched_env(name)
    envs.reset(seed=0)
    space = envs.single_action_space
    size = int(np.prod(space.shape)) if space.shape else 1
    sizes = {"right": (2, size), "one short": (2, max(size - 1, 1)),
             "one more": (2, size + 1), "flat": (2 * size,), "scalar": (), "3d": (2, size, 1)}
    if not space.shape:  # Discrete: one choice per simulation
        sizes.update(right=(2,), flat=(2, 1), **{"one short": (1,), "one more": (3,)})
    wanted = sizes[shape]
    flat = (values * (int(np.prod(wanted)) // len(values) + 1))[: int(np.prod(wanted))]
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            action = np.array(flat, dtype=dtype).reshape(wanted)
    except (OverflowError, ValueError, TypeError):
        return  # numpy itself cannot hold these values in this dtype
    try:
        obs, reward, _, _, info = envs.step(action)
    except ValueError as error:
        assert re.search(r"action", str(error)), error
        event("refused")
        return
    event("stepped")
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    huge = (np.abs(obs).max(axis=tuple(range(1, obs.ndim))) > 1e6) | (np.abs(reward) > 1e6)
    assert not (huge & ~info["diverged"]).any()
