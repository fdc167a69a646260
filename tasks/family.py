"""TaskFamily: parameters, splits and task sampling; it builds the envs that simulate tasks.

A task is a frozen dataclass of numbers, made per family by `task_type`. A family checks
its declared splits when it is built (every split inside the declared space, test-ood
disjoint from train), samples tasks with an explicit generator, and hands tasks to the
batched env as arrays (one array [N] per parameter).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import gymnasium
import numpy as np

from tasks.regions import Param, Region, product, short_repr, union
from tasks.resources import refuse_unless_fits

SPLITS = ("train", "test-id", "test-ood")
# memory of a sampled task (measured): the task object with its __dict__, and per
# parameter a float in it and the float64 values drawn for it
TASK_BYTES, TASK_BYTES_PER_PARAM = 88, 40
# memory of one env of a batched env, at least (measured on point-nav; MuJoCo's own
# memory comes on top for the locomotion families)
MIN_ENV_BYTES = 1000

Task = Any  # an instance of some family's task_type: a frozen dataclass of numbers
VecFactory = Callable[..., gymnasium.vector.VectorEnv]
EnvFactory = Callable[..., gymnasium.Env]


def env_id(name: str) -> str:
    """The gymnasium id of a family: fewshot/<name>-v0, with "+" (not allowed in gymnasium
    ids) written as "_": cheetah-vel+dyn is fewshot/cheetah-vel_dyn-v0."""
    return f"fewshot/{name.replace('+', '_')}-v0"


def make_task_type(class_name: str, params: Sequence[Param], family: Any) -> type:
    """A frozen dataclass with one number field per parameter, in declaration order.

    It pickles as (family name, options, origin, values), so tasks can cross process
    boundaries: the receiving process rebuilds the family from its registry, importing
    the module that registered it if need be.
    """
    fields = [(p.name, int if p.is_discrete else float) for p in params]

    def reduce(task: Any) -> tuple:
        return _rebuild_task, (family.name, dict(family.options), family.origin,
                               dataclasses.asdict(task))

    return dataclasses.make_dataclass(class_name, fields, frozen=True,
                                      namespace={"__module__": __name__,
                                                 "__reduce__": reduce})


def _rebuild_task(name: str, options: dict[str, Any], origin: str | None,
                  values: dict[str, Any]) -> Task:
    from tasks.registry import rebuild  # deferred: the registry imports this module

    return rebuild(name, options, origin).task_from_dict(values)


class TaskFamily:
    """A distribution of tasks with declared splits, and the envs that simulate them.

    Args:
        name: registry name, e.g. "cheetah-vel"; the gymnasium id is `env_id(name)`.
        params: the task parameters and their declared spaces.
        splits: a Region per split; "train" is required, "test-id" defaults to the
            training region (fresh tasks from the training distribution), "test-ood" is
            optional and must not intersect "train".
        horizon: env-steps per episode before truncation.
        make_vec: builds the batched env, `make_vec(family, tasks, seed=..., **options)`.
        make_env: builds the single reference env, `make_env(family, task, **options)`.
        doc: one line for `fewshot families`.
        default_task: the task an env starts with; the centre of the training region if
            not given.
        outcomes: names of the episode outcomes its envs flag (e.g. "success"): at each
            step, `info["outcome_<name>"]` says whether the outcome happened then.
        oracle: optional, the family's known best behaviour, `oracle(obs_NO, task_arrays)
            -> actions` ([N, A] in the env's units, or [N] choices), a scripted reference
            learner. An oracle that must remember (where the agent is, when its
            observation does not say) has `start(task_arrays) -> run` instead: the run is
            called as above, and `run.ended(ended_N)` hears which episodes ended.

    `options` (the factory options it was built with) and `origin` (the module that
    registered it) are set by the registry.
    """

    def __init__(self, *, name: str, params: Sequence[Param], splits: Mapping[str, Region],
                 horizon: int, make_vec: VecFactory, make_env: EnvFactory, doc: str = "",
                 default_task: Mapping[str, float] | None = None,
                 outcomes: Sequence[str] = (),
                 oracle: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None
                 = None) -> None:
        _check_arguments(name=name, params=params, splits=splits, horizon=horizon,
                         make_vec=make_vec, make_env=make_env, doc=doc,
                         default_task=default_task, outcomes=outcomes, oracle=oracle)
        self.name = name
        self.params = tuple(params)
        self.horizon = int(horizon)
        self.doc = doc
        self.outcomes = tuple(outcomes)
        self.oracle = oracle
        self.options: Mapping[str, Any] = MappingProxyType({})
        self.origin: str | None = None
        bad = [o for o in self.outcomes if not o.isidentifier()]
        if bad or len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError(f"family {name!r}: outcomes must be distinct identifiers, got "
                             f"{list(self.outcomes)}")
        self._param = {p.name: p for p in self.params}
        if len(self._param) != len(self.params):
            raise ValueError(f"family {name!r}: the names of its params repeat")
        if self.horizon < 1:
            raise ValueError(f"family {name!r}: horizon must be >= 1, got {horizon}")
        splits = dict(splits)
        splits.setdefault("test-id", splits.get("train"))
        self._check_splits(splits)
        self.splits: Mapping[str, Region] = MappingProxyType(
            {s: splits[s] for s in SPLITS if s in splits})
        class_name = "".join(w.capitalize() for w in _words(name)) + "Task"
        self.task_type = make_task_type(class_name, self.params, self)
        try:
            self.default_task = self.task_from_dict(
                default_task if default_task is not None else self._centre(splits["train"]))
        except ValueError as error:
            raise ValueError(f"family {name!r}: default_task: {error}") from error
        self._make_vec = make_vec
        self._make_env = make_env

    def __repr__(self) -> str:
        return f"TaskFamily({self.name!r}, splits={list(self.splits)})"

    @property
    def env_id(self) -> str:
        return env_id(self.name)

    # Tasks --------------------------------------------------------------------------

    def sample(self, n: int, split: str, rng: np.random.Generator, *,
               cover: bool = False) -> list[Task]:
        """Draw n tasks uniformly from a split's region.

        cover=True (for frozen evaluation sets): when the split has discrete parameters,
        each combination of their values gets its share of the n tasks by proportional
        stratification, so every discrete value appears once n allows (8 tasks over 4
        gaits: 2 each). Splits without discrete parameters are sampled as with cover=False.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {short_repr(n)}")
        region = self.region(split)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if not isinstance(cover, bool):
            raise ValueError(f"cover must be true or false, got {short_repr(cover)}")
        refuse_unless_fits(f"{n} tasks of {self.name!r}",
                           int(n) * (TASK_BYTES + TASK_BYTES_PER_PARAM * len(self.params)))
        discrete = [name for name in region.names if self._param[name].is_discrete]
        values = region.sample(int(n), self._param, rng, stratify_by=discrete if cover else ())
        return [self.task_from_dict({k: v[i] for k, v in values.items()}) for i in range(n)]

    def finite_tasks(self, split: str) -> list[Task]:
        """Every task of a split that is a finite set of points (training levels, training
        images), one per point of its region, in the region's order. Raises if the split
        has a range of values (its tasks cannot be listed)."""
        region = self.region(split)
        for box in region.boxes:
            ranged = sorted(n for n, interval in box.items() if not interval.is_point)
            if ranged:
                raise ValueError(f"family {self.name!r}: split {split!r} is not a finite set "
                                 f"of tasks; it has a range of {ranged}")
        return [self.task_from_dict({n: interval.lo for n, interval in box.items()})
                for box in region.boxes]

    def region(self, split: str) -> Region:
        if not isinstance(split, str) or split not in self.splits:
            raise ValueError(f"family {self.name!r} has no split {short_repr(split)}; its splits "
                             f"are {list(self.splits)}")
        return self.splits[split]

    def split_of(self, task: Task) -> list[str]:
        """The splits whose region contains the task (test-id and train coincide)."""
        values = self.task_to_dict(task)
        return [s for s, region in self.splits.items() if region.contains(values)]

    def check_task(self, task: Task) -> Task:
        """Return the task if it belongs to this family's declared space, else raise."""
        if not isinstance(task, self.task_type):
            raise ValueError(f"family {self.name!r} takes {self.task_type.__name__} tasks "
                             f"({', '.join(self._param)}), got {short_repr(task)}")
        for p in self.params:
            p.check(getattr(task, p.name))
        return task

    def task_to_dict(self, task: Task) -> dict[str, int | float]:
        """The task's values as plain Python numbers (JSON-ready)."""
        self.check_task(task)
        return {p.name: p.check(getattr(task, p.name)) for p in self.params}

    def task_from_dict(self, values: Mapping[str, object]) -> Task:
        """Build a task from a mapping of parameter values (e.g. parsed JSON)."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a {self.name!r} task is a mapping of {list(self._param)}, "
                             f"got {short_repr(values)}")
        unknown = set(values) - set(self._param)
        missing = set(self._param) - set(values)
        if unknown or missing:
            raise ValueError(f"a {self.name!r} task has parameters {list(self._param)}; "
                             f"unknown {sorted(unknown, key=repr)}, missing {sorted(missing)}")
        return self.task_type(**{p.name: p.check(_plain(values[p.name]))
                                 for p in self.params})

    def task_arrays(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        """Tasks as data: one float64 array [N] per parameter."""
        tasks = list(tasks)
        if not tasks:
            raise ValueError("need at least one task")
        for task in tasks:
            self.check_task(task)
        return {p.name: np.array([getattr(t, p.name) for t in tasks], dtype=np.float64)
                for p in self.params}

    def describe(self, task: Task) -> str:
        """A short label, e.g. "goal_velocity=1.3" or "gait=hop"."""
        values = self.task_to_dict(task)
        return ", ".join(f"{k}={self._param[k].label(v)}" for k, v in values.items())

    # Envs ---------------------------------------------------------------------------

    def vec_options(self) -> list[str]:
        """The options its batched env takes besides the seed (e.g. horizon, nthread)."""
        return [name for name, p in inspect.signature(self._make_vec).parameters.items()
                if p.kind == inspect.Parameter.KEYWORD_ONLY and name != "seed"]

    def make_vec(self, tasks: Sequence[Task], *, seed: int | None = None,
                 **options: Any) -> gymnasium.vector.VectorEnv:
        """A batched env with one simulation per task (repeat a task for several)."""
        tasks = list(tasks)
        if not tasks:
            raise ValueError("make_vec needs at least one task")
        for task in tasks:
            self.check_task(task)
        check_seed(seed)
        allowed = self.vec_options()
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"make_vec of {self.name}: unknown options {unknown}; "
                             f"allowed: {allowed}")
        return self._make_vec(self, tasks, seed=seed, **options)

    def make_env(self, task: Task | None = None, **options: Any) -> gymnasium.Env:
        """The single reference env, with a TimeLimit at the family's horizon.

        A registered family goes through `gymnasium.make(self.env_id)` (and its checks);
        an unregistered one is built directly.
        """
        if self.env_id in gymnasium.registry:
            if self.options:
                options["family_options"] = dict(self.options)
            # the registered TimeLimit is the default options' horizon, not necessarily ours
            return gymnasium.make(self.env_id, task=task, max_episode_steps=self.horizon,
                                  **options)
        env = self._build_env(task, **options)
        return gymnasium.wrappers.TimeLimit(env, max_episode_steps=self.horizon)

    def _build_env(self, task: Task | None = None, **options: Any) -> gymnasium.Env:
        """Registry entry point: the unwrapped reference env."""
        task = self.default_task if task is None else self.check_task(task)
        return self._make_env(self, task, **options)

    def _build_vec(self, num_envs: int = 1, tasks: Sequence[Task] | None = None,
                   max_episode_steps: int | None = None, seed: int | None = None,
                   **options: Any) -> gymnasium.vector.VectorEnv:
        """Registry vector entry point: `gymnasium.make_vec(id, num_envs=...)`."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {short_repr(num_envs)}")
        refuse_unless_fits(f"{num_envs} envs of {self.name!r}", num_envs * MIN_ENV_BYTES)
        if tasks is None:
            tasks = [self.default_task] * num_envs
        elif len(tasks) != num_envs:
            raise ValueError(f"num_envs={num_envs} but {len(tasks)} tasks were given")
        if max_episode_steps is not None:
            options["horizon"] = max_episode_steps
        return self.make_vec(tasks, seed=seed, **options)

    # Construction checks ------------------------------------------------------------

    def _check_splits(self, splits: Mapping[str, Region | None]) -> None:
        where = f"family {self.name!r}"
        unknown = set(splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"{where}: unknown splits {sorted(unknown)}; allowed {SPLITS}")
        if splits.get("train") is None:
            raise ValueError(f"{where}: a 'train' split is required")
        for split, region in splits.items():
            if region is None:
                raise ValueError(f"{where}: split {split!r} has no region")
            if set(region.names) != set(self._param):
                raise ValueError(f"{where}: split {split!r} names {sorted(region.names)}, "
                                 f"the family's parameters are {sorted(self._param)}")
            for box in region.boxes:
                for name, interval in box.items():
                    p = self._param[name]
                    if p.is_discrete:
                        inside = interval.is_point and interval.lo in p.values
                    else:
                        inside = p.low <= interval.lo and interval.hi <= p.high
                    if not inside:
                        raise ValueError(f"{where}: split {split!r} reaches {name} in "
                                         f"[{interval.lo}, {interval.hi}), outside the "
                                         f"declared space {p.describe()}")
        if "test-ood" in splits and splits["test-ood"].intersects(splits["train"]):
            raise ValueError(f"{where}: the test-ood region intersects the train region; "
                             "an OOD split must lie outside the training distribution")

    def _centre(self, region: Region) -> dict[str, float]:
        first = region.boxes[0]
        centre = {}
        for name, interval in first.items():
            p = self._param[name]
            mid = (p.to_sampling(interval.lo) + p.to_sampling(interval.hi)) / 2
            centre[name] = interval.lo if interval.is_point else float(
                p.from_sampling(np.float64(mid)))
        return centre


def _check_arguments(*, name: object, params: object, splits: object, horizon: object,
                     make_vec: object, make_env: object, doc: object, default_task: object,
                     outcomes: object, oracle: object) -> None:
    """The types of TaskFamily's arguments, before anything is built from them."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise ValueError(f"a family's name is letters, digits and _ . + - (it names a "
                         f"gymnasium env), got {short_repr(name)}")
    rows = [  # argument, its value, whether it is allowed, what is allowed
        ("params", params, isinstance(params, Sequence) and len(params) > 0
         and all(isinstance(p, Param) for p in params), "a non-empty sequence of Params"),
        ("splits", splits, isinstance(splits, Mapping) and all(
            isinstance(k, str) and (r is None or isinstance(r, Region))
            for k, r in splits.items()), "a mapping of split names to Regions"),
        ("horizon", horizon, isinstance(horizon, (int, np.integer))
         and not isinstance(horizon, bool), "an integer >= 1"),
        ("make_vec", make_vec, callable(make_vec), "callable"),
        ("make_env", make_env, callable(make_env), "callable"),
        ("doc", doc, isinstance(doc, str), "a string"),
        ("default_task", default_task, default_task is None
         or isinstance(default_task, Mapping), "a mapping of parameter values, or None"),
        ("outcomes", outcomes, isinstance(outcomes, Sequence) and not isinstance(outcomes, str)
         and all(isinstance(o, str) for o in outcomes), "a sequence of names"),
        ("oracle", oracle, oracle is None or callable(oracle) or callable(
            getattr(oracle, "start", None)), "callable, an object with start(), or None"),
    ]
    for argument, value, ok, allowed in rows:
        if not ok:
            raise ValueError(f"family {name!r}: {argument} must be {allowed}, got "
                             f"{short_repr(value)}")


def combine_splits(parts: Sequence[Mapping[str, Region]]) -> dict[str, Region]:
    """Splits of a family made of independent parts (reward x dynamics x ...).

    train is the product of the parts' train regions. test-ood holds the tasks where at
    least one part is out of distribution and the others are anywhere declared:
    the union over parts i with an OOD split of
    (parts before i: train) x (part i: test-ood) x (parts after i: train or test-ood),
    whose pieces are disjoint, so the union is sampled uniformly by volume. test-id is
    the training region unless a part declares its own (a part trained on a few points of
    a range tests on the range): then the product of each part's test-id, or train. Parts
    without parameters (a fixed reward) take no part in the splits.
    """
    parts = [p for p in parts if p]
    train = product([p["train"] for p in parts])
    anywhere = [union([p["train"], p["test-ood"]]) if "test-ood" in p else p["train"]
                for p in parts]
    pieces = [product([q["train"] for q in parts[:i]] + [p["test-ood"]] + anywhere[i + 1:])
              for i, p in enumerate(parts) if "test-ood" in p]
    splits = {"train": train}
    if any("test-id" in p for p in parts):
        splits["test-id"] = product([p.get("test-id", p["train"]) for p in parts])
    if pieces:
        splits["test-ood"] = union(pieces)
    return splits


def check_seed(seed: object, what: str = "seed") -> None:
    """A seed is None (fresh entropy) or an integer >= 0; else a ValueError naming it."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{what} must be an integer >= 0 or None, got {short_repr(seed)}")


def _words(name: str) -> list[str]:
    return [w for w in name.replace("+", "-").split("-") if w]


def _plain(value: object) -> object:
    """numpy scalars to Python numbers, so tasks print and serialise cleanly."""
    return value.item() if isinstance(value, np.generic) else value
