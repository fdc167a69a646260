"""Task sets: the named lists of tasks the harness scores a learner on.

A set is either a family's declared split frozen from a seed (test-id, test-ood; see
`harness.freeze_tasks`) or a set of the user's own, read from JSON:

    {"family": "point-nav",
     "sets": {"near-origin": [{"goal_x": 0.05, "goal_y": 0.0}, ...],
              "test-ood": [{"goal_x": 0.9, "goal_y": -0.8}]}}

(an evaluation's tasks.json, whose key is "splits", is read the same way). Every task is
checked against the family's parameter space; a set that takes a declared split's name
must lie in that split's region (a training task filed as test-ood is refused); any
other name is free.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tasks
from fewshot.checks import short_repr
from tasks.resources import refuse_unless_fits

DECLARED_CODES = {"train": 0, "test-id": 1, "test-ood": 2}
JSON_BYTES_PER_FILE_BYTE = 20


def set_code(name: str) -> int:
    """The integer a set's seeds derive from: 0, 1, 2 for the declared splits (as always),
    a stable hash of the name for any other set."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a task set's name must be a non-empty string, got "
                         f"{short_repr(name)}")
    return DECLARED_CODES.get(name, 1000 + zlib.crc32(name.encode()))


def check_task_sets(family: Any, task_sets: Mapping[str, Sequence[Any]]) -> None:
    """Raise ValueError unless every set is non-empty, every task is the family's, and a
    set named after a declared split lies in that split."""
    if not isinstance(task_sets, Mapping):
        raise ValueError(f"task sets are a mapping of set names to lists of tasks, got "
                         f"{type(task_sets).__name__}")
    if not task_sets:
        raise ValueError("no task sets to evaluate on: name a split or give a task set")
    for name, task_list in task_sets.items():
        set_code(name)
        if isinstance(task_list, str) or not isinstance(task_list, Sequence):
            raise ValueError(f"task set {name!r} must be a list of tasks, got "
                             f"{type(task_list).__name__}")
        if not task_list:
            raise ValueError(f"task set {name!r} is empty")
        for i, task in enumerate(task_list):
            try:
                family.check_task(task)
            except ValueError as error:
                raise ValueError(f"task set {name!r}, task {i}: {error}") from error
            if name in family.splits and name not in family.split_of(task):
                raise ValueError(
                    f"task set {name!r}, task {i} ({family.describe(task)}) lies outside "
                    f"{family.name!r}'s declared {name} split (it is in "
                    f"{family.split_of(task) or 'no declared split'}); rename the set to "
                    "evaluate on it anyway")


def same_options(family: Any, stored: Any) -> bool:
    """Whether options stored with tasks name the family's: an option the family gained
    after they were written counts at its default (what such tasks were made with)."""
    try:
        defaults = {o.name: o.default for o in tasks.options(family.name).values()}
    except ValueError:  # a family built directly, not registered
        defaults = {}
    return (isinstance(stored, Mapping)
            and {**defaults, **stored} == {**defaults, **dict(family.options)})


def task_sets_from_json(family: Any, data: Any, *, source: str) -> dict[str, list[Any]]:
    """Task sets from parsed JSON ({"family": ..., "sets": {name: [task, ...]}}); errors
    name the source and the offending set and task."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a task-set file is a JSON object with \"sets\", got "
                         f"{type(data).__name__}")
    unknown = sorted(set(data) - {"family", "family_options", "sets", "splits", "seed"},
                     key=repr)
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; a task-set file has "
                         "\"family\" and \"sets\" (and optionally \"family_options\")")
    if "family" in data and data["family"] != family.name:
        raise ValueError(f"{source}: its tasks are of family {short_repr(data['family'])}, "
                         f"the run's family is {family.name!r}")
    if "family_options" in data and not same_options(family, data["family_options"]):
        raise ValueError(f"{source}: its tasks are of {family.name!r} with options "
                         f"{short_repr(data['family_options'])}, the run's family has "
                         f"{dict(family.options)}")
    if "sets" in data and "splits" in data:
        raise ValueError(f"{source}: give the task sets under \"sets\" or \"splits\", not "
                         "both")
    sets = data.get("sets", data.get("splits"))
    if not isinstance(sets, Mapping) or not sets:
        raise ValueError(f"{source}: \"sets\" must map set names to lists of tasks, got "
                         f"{short_repr(sets)}")
    task_sets: dict[str, list[Any]] = {}
    for name, entries in sets.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: a task set's name must be a non-empty string, got "
                             f"{short_repr(name)}")
        if not isinstance(entries, list):
            raise ValueError(f"{source}: set {name!r} must be a list of tasks, got "
                             f"{type(entries).__name__}")
        task_sets[name] = []
        for i, entry in enumerate(entries):
            try:
                task_sets[name].append(family.task_from_dict(entry))
            except ValueError as error:
                raise ValueError(f"{source}: set {name!r}, task {i}: {error}") from error
    try:
        check_task_sets(family, task_sets)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    return task_sets


def load_task_sets(family: Any, path: Path) -> dict[str, list[Any]]:
    """Task sets from a JSON file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no task-set file at {path}")
    # parsed JSON takes about this many times the file's size (measured on task lists)
    refuse_unless_fits(f"reading the task-set file {path}",
                       JSON_BYTES_PER_FILE_BYTE * path.stat().st_size)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=_no_repeats)
    except _RepeatedKeyError as error:
        raise ValueError(f"{path}: {error}") from error
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: JSON syntax, huge ints
        raise ValueError(f"{path} is not a JSON task-set file: {error}") from error
    except RecursionError as error:
        raise ValueError(f"{path} is not a task-set file: its JSON is nested too deeply "
                         "for a list of tasks") from error
    return task_sets_from_json(family, data, source=str(path))


class _RepeatedKeyError(ValueError):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json keeps the last silently,
    so a set named twice would lose its first tasks)."""
    repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items()
                      if count > 1)
    if repeated:
        raise _RepeatedKeyError(f"the keys {repeated} appear more than once in one object "
                                "(a set or a task named twice)")
    return dict(pairs)
