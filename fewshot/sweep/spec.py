"""A sweep's SPEC file: what to train (a base config, a grid, sampled values, seeds) and how
to score each trained run. Everything is checked, and every trial's config is built,
before anything starts, so a mistake is named before the first trial runs.

    base: {algo: maml, family: point-nav, iterations: 20, maml: {meta_batch_size: 10}}
    grid: {maml.inner_lr: [0.05, 0.1]}          # field -> values; every combination
    sample: {maml.max_kl: {loguniform: [0.001, 0.1]}}   # optional, num_samples draws
    num_samples: 2
    seeds: [0, 1]
    cpus_per_trial: 1
    evaluate: {learners: [trained], splits: [test-id, test-ood], episodes: 3, tasks: 20,
               trials: 5, seed: 0}
    # or, on tasks of one's own (a name that is no declared split, e.g. "speeds"),
    # evaluate: {splits: [], task_sets: {speeds: [{goal_velocity: 0.5}]}, ...}
    stop_early: {metric: return_step1, mode: max, grace_period: 5}   # optional, ASHA

With `search: {algorithm: optuna, metric: return_step1, mode: max}`, Optuna (through
Tune) chooses `num_samples` settings from `sample` one after another, learning from the
finished trials' last value of the metric; the trials are then made as Tune asks for them
(make_trial), and `grid` and a second seed are refused.

`base` may also be the path of a YAML file (as `fewshot train --config` takes), relative
to the SPEC file. Field names are dotted: `maml.inner_lr`, `family`,
`family_options.train_instances`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fewshot import registry
from fewshot.checks import ConfigError
from fewshot.eval.evaluation import learner_kinds
from fewshot.eval.harness import EvaluationSettings
from fewshot.eval.task_sets import task_sets_from_json
from fewshot.run.config import RunConfig, from_dict, is_version1, migrate, to_dict
from fewshot.runtime import derived_seed

KEYS = ("base", "grid", "sample", "num_samples", "seeds", "cpus_per_trial", "evaluate",
        "stop_early", "search")
DISTRIBUTIONS = {
    "uniform": lambda rng, a, b: float(rng.uniform(a, b)),
    "loguniform": lambda rng, a, b: float(math.exp(rng.uniform(math.log(a), math.log(b)))),
    "randint": lambda rng, a, b: int(rng.integers(a, b)),
}
EVALUATE_KEYS = ("learners", "splits", "episodes", "tasks", "trials", "seed", "task_sets")
STOP_EARLY_KEYS = ("metric", "mode", "grace_period", "reduction_factor")
SEARCH_KEYS = ("algorithm", "metric", "mode", "seed")
SEARCH_ALGORITHMS = ("optuna",)


class SpecError(ValueError):
    """A SPEC file that cannot run; the message names the field."""


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep and how it is scored."""

    name: str            # its run folder's name under OUT/runs/
    group: str           # the grid and sampled values, without the seed: one learner label
    values: dict[str, Any]  # field -> value set by the grid and the samples
    seed: int
    config: dict[str, Any]  # the run's config in its YAML form


@dataclass(frozen=True)
class Spec:
    trials: list[Trial]  # empty with a search: its trials are made as Tune asks
    cpus_per_trial: int
    learners: list[str] | dict[str, list[str]]  # see learners_of
    settings: EvaluationSettings
    task_sets: dict[str, list[dict[str, Any]]]  # set name -> tasks as parameter values
    stop_early: dict[str, Any] | None
    source: dict[str, Any] = field(repr=False)  # the SPEC as read (stored with the sweep)
    search: dict[str, Any] | None = None  # algorithm, metric, mode, seed
    base: dict[str, Any] = field(default_factory=dict, repr=False)  # with the imports
    sample: dict[str, tuple[str, list]] = field(default_factory=dict)
    num_samples: int = 1
    seeds: list[int] = field(default_factory=list)


def load_spec(path: Path, *, imports: list[str] = ()) -> Spec:
    """Read and check a SPEC file; SpecError names what is wrong. `imports` (the
    command's --import) are added to every trial's config, so its workers import them."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise SpecError(f"cannot read the sweep SPEC {path}: {error}") from error
    if not isinstance(values, dict):
        raise SpecError(f"{path} must hold a mapping with {list(KEYS)}")
    return parse_spec(values, base_dir=path.parent, source=str(path), imports=imports)


def parse_spec(values: dict[str, Any], *, base_dir: Path, source: str = "SPEC",
               imports: list[str] = ()) -> Spec:
    unknown = sorted(set(values) - set(KEYS), key=str)
    if unknown:
        raise SpecError(f"{source}: unknown fields {unknown}; a SPEC has {list(KEYS)}")
    base = read_base(values.get("base", {}), base_dir, source)
    if imports:
        base["imports"] = list(dict.fromkeys([*base.get("imports", []), *imports]))
    grid = checked_grid(values.get("grid") or {}, source)
    sample = checked_sample(values.get("sample") or {}, source)
    num_samples = values.get("num_samples", 1)
    _require(_is_count(num_samples), "num_samples", "an integer >= 1", num_samples, source)
    seeds = values.get("seeds", [base.get("seed", 0)])
    _require(isinstance(seeds, list) and seeds and len(set(map(repr, seeds))) == len(seeds)
             and all(_is_count(s, low=0) for s in seeds),
             "seeds", "a non-empty list of distinct integers >= 0", seeds, source)
    cpus = values.get("cpus_per_trial", 1)
    _require(_is_count(cpus), "cpus_per_trial", "an integer >= 1", cpus, source)
    learners, settings, task_sets = checked_evaluate(values.get("evaluate") or {}, source)
    stop_early = checked_stop_early(values.get("stop_early"), source)
    search = checked_search(values.get("search"), grid, sample, seeds, source)
    if search is None:
        trials = expand(base, grid, sample, num_samples, seeds, cpus, source)
    else:  # every bound of every distribution must make a valid config
        trials = [make_trial(base, values, seeds[0], cpus, source, searched=True)
                  for values in corners(sample)]
    for trial in trials:
        config = from_dict(copy.deepcopy(trial.config))
        if task_sets:
            check_spec_task_sets(config, task_sets, settings, source)
        wrong = [kind for kind in learners_of(learners, config.algo)
                 if kind not in learner_kinds(config)]
        if wrong:
            raise SpecError(f"{source}: evaluate.learners {wrong} do not apply to trial "
                            f"{trial.name} ({config.algo}); its learners: "
                            f"{learner_kinds(config)}")
    return Spec(trials=[] if search else trials, cpus_per_trial=cpus, learners=learners,
                settings=settings, task_sets=task_sets, stop_early=stop_early, source=values,
                search=search, base=base, sample=sample, num_samples=num_samples, seeds=seeds)


def read_base(base: Any, base_dir: Path, source: str) -> dict[str, Any]:
    if isinstance(base, str):
        path = base_dir / base
        try:
            base = yaml.safe_load(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise SpecError(f"{source}: cannot read base {path}: {error}") from error
    _require(isinstance(base, dict), "base", "a training config (a mapping) or the path of "
             "one", base, source)
    if "version" not in base and not is_version1(base):
        return dict(base)  # a partial version-2 config, as --config files may be
    try:
        return migrate(base)
    except ValueError as error:
        raise SpecError(f"{source}: base: {error}") from error


def checked_grid(grid: Any, source: str) -> dict[str, list]:
    _require(isinstance(grid, dict), "grid", "a mapping of field -> list of values", grid,
             source)
    for name, values in grid.items():
        _require(isinstance(name, str) and name, "grid", "field names (strings)", name, source)
        _require(isinstance(values, list) and values, f"grid.{name}",
                 "a non-empty list of values", values, source)
    return grid


def checked_sample(sample: Any, source: str) -> dict[str, tuple[str, list]]:
    _require(isinstance(sample, dict), "sample", "a mapping of field -> distribution",
             sample, source)
    checked = {}
    for name, spec in sample.items():
        allowed = (f"one of {{{', '.join(DISTRIBUTIONS)}: [low, high]}} or "
                   "{choice: [values]}")
        _require(isinstance(spec, dict) and len(spec) == 1, f"sample.{name}", allowed, spec,
                 source)
        (kind, args), = spec.items()
        if kind == "choice":
            _require(isinstance(args, list) and args, f"sample.{name}.choice",
                     "a non-empty list", args, source)
        else:
            _require(kind in DISTRIBUTIONS, f"sample.{name}", allowed, spec, source)
            numbers = (isinstance(args, list) and len(args) == 2
                       and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                               and math.isfinite(a) for a in args))
            _require(numbers and args[0] < args[1] and (kind != "loguniform" or args[0] > 0),
                     f"sample.{name}.{kind}", "[low, high] with low < high (low > 0 for "
                     "loguniform)", args, source)
        checked[name] = (kind, args)
    return checked


def checked_evaluate(values: Any, source: str) -> tuple[Any, EvaluationSettings, dict]:
    _require(isinstance(values, dict), "evaluate", f"a mapping with {list(EVALUATE_KEYS)}",
             values, source)
    unknown = sorted(set(values) - set(EVALUATE_KEYS), key=str)
    if unknown:
        raise SpecError(f"{source}: unknown fields {[f'evaluate.{k}' for k in unknown]}; "
                        f"evaluate has {list(EVALUATE_KEYS)}")
    learners = values.get("learners", ["trained"])
    lists = learners.values() if isinstance(learners, dict) else [learners]
    _require(bool(learners) and all(isinstance(ks, list) and ks and all(
        isinstance(k, str) for k in ks) for ks in lists), "evaluate.learners",
        "a non-empty list of learner names, or a mapping algo -> such a list", learners,
        source)
    try:
        settings = EvaluationSettings(
            splits=tuple(values.get("splits", ["test-id", "test-ood"])),
            episodes=values.get("episodes", 3), tasks=values.get("tasks", 20),
            trials=values.get("trials", 5), seed=values.get("seed", 0))
    except (TypeError, ValueError) as error:
        raise SpecError(f"{source}: evaluate: {error}") from error
    task_sets = values.get("task_sets", {})
    _require(isinstance(task_sets, dict) and all(
        isinstance(name, str) and isinstance(ts, list) and ts and all(
            isinstance(t, dict) for t in ts) for name, ts in task_sets.items()),
        "evaluate.task_sets", "a mapping of set names to non-empty lists of tasks "
        "(parameter -> value)", task_sets, source)
    return learners, settings, task_sets


def check_spec_task_sets(config: RunConfig, task_sets: dict[str, list[dict[str, Any]]],
                         settings: EvaluationSettings, source: str) -> None:
    """Every task of evaluate.task_sets is one of the trial's family, and no set is named
    like a split the settings freeze."""
    clash = sorted(set(task_sets) & set(settings.splits))
    if clash:
        raise SpecError(f"{source}: evaluate.task_sets {clash} are named like splits in "
                        f"evaluate.splits; rename them or leave those splits out")
    try:
        task_sets_from_json(config.family_object(), {"sets": task_sets},
                            source="evaluate.task_sets")
    except ValueError as error:
        raise SpecError(f"{source}: {error} (family {config.family} "
                        f"{config.family_options})") from error


def learners_of(learners: list[str] | dict[str, list[str]], algo: str) -> list[str]:
    """The learners a trial of `algo` is scored as (a mapping gives each algorithm its
    own; an algorithm it leaves out is scored as `trained`)."""
    return learners.get(algo, ["trained"]) if isinstance(learners, dict) else learners


def checked_metric_section(key: str, values: Any, keys: tuple[str, ...],
                           source: str) -> str:
    """What stop_early and search share: a mapping with a metric (a metrics.csv column),
    only its own keys, and a mode; returns the mode."""
    _require(isinstance(values, dict) and isinstance(values.get("metric"), str),
             key, f"a mapping with a metric (a metrics.csv column) and "
             f"{[k for k in keys if k != 'metric']}", values, source)
    unknown = sorted(set(values) - set(keys), key=str)
    if unknown:
        raise SpecError(f"{source}: unknown fields {[f'{key}.{k}' for k in unknown]}; "
                        f"{key} has {list(keys)}")
    mode = values.get("mode", "max")
    _require(mode in ("max", "min"), f"{key}.mode", "max or min", mode, source)
    return mode


def checked_stop_early(values: Any, source: str) -> dict[str, Any] | None:
    if values is None:
        return None
    mode = checked_metric_section("stop_early", values, STOP_EARLY_KEYS, source)
    for name, default in (("grace_period", 1), ("reduction_factor", 2)):
        value = values.get(name, default)
        _require(_is_count(value, low=1 if name == "grace_period" else 2),
                 f"stop_early.{name}", "an integer >= 1" if name == "grace_period" else
                 "an integer >= 2", value, source)
    return {"metric": values["metric"], "mode": mode,
            "grace_period": values.get("grace_period", 1),
            "reduction_factor": values.get("reduction_factor", 2)}


def checked_search(values: Any, grid: dict, sample: dict, seeds: list[int],
                   source: str) -> dict[str, Any] | None:
    if values is None:
        return None
    mode = checked_metric_section("search", values, SEARCH_KEYS, source)
    algorithm = values.get("algorithm", SEARCH_ALGORITHMS[0])
    _require(algorithm in SEARCH_ALGORITHMS, "search.algorithm",
             f"one of {list(SEARCH_ALGORITHMS)}", algorithm, source)
    seed = values.get("seed", 0)
    _require(_is_count(seed, low=0), "search.seed", "an integer >= 0", seed, source)
    _require(bool(sample), "sample", "the distributions the search chooses from (a "
             "non-empty mapping) when search is given", sample, source)
    _require(not grid, "grid", "empty when search is given (give a field's values as "
             "sample: {FIELD: {choice: [...]}})", grid, source)
    _require(len(seeds) == 1, "seeds", "one seed when search is given (each setting the "
             "search chooses is trained once)", seeds, source)
    for name, (kind, args) in sample.items():  # Optuna's categories are plain scalars
        _require(kind != "choice" or all(a is None or isinstance(a, (bool, int, float, str))
                                         for a in args), f"sample.{name}.choice",
                 "numbers, strings, booleans or null when search is given", args, source)
    return {"algorithm": algorithm, "metric": values["metric"], "mode": mode, "seed": seed}


def expand(base: dict[str, Any], grid: dict[str, list], sample: dict[str, tuple],
           num_samples: int, seeds: list[int], cpus: int, source: str) -> list[Trial]:
    """Every trial: the grid's combinations x num_samples draws x the seeds. Draws are
    seeded by their index, so the same SPEC always gives the same trials."""
    names = list(grid)
    trials, seen = [], set()
    for combination in itertools.product(*(grid[n] for n in names)):
        for draw in range(num_samples if sample else 1):
            rng = np.random.default_rng(derived_seed(draw, len(trials)))
            values = dict(zip(names, combination, strict=True))
            values.update({name: _draw(rng, kind, args) for name, (kind, args)
                           in sample.items()})
            for seed in seeds:
                trial = make_trial(base, values, seed, cpus, source,
                                   draw=draw if sample else None)
                if trial.name in seen:
                    raise SpecError(f"{source}: two trials would share the run folder "
                                    f"{trial.name}")
                seen.add(trial.name)
                trials.append(trial)
    return trials


def make_trial(base: dict[str, Any], values: dict[str, Any], seed: int, cpus: int,
               source: str = "SPEC", *, draw: int | None = None,
               searched: bool = False) -> Trial:
    """The trial of one setting (field -> value) and seed, its config checked. A search's
    trials carry a digest of their exact values, as two settings may print alike."""
    group = group_label(base, values, draw)
    if searched:
        exact = json.dumps(values, sort_keys=True).encode()
        group += f" id={hashlib.sha1(exact).hexdigest()[:6]}"
    config = copy.deepcopy(base)
    config.setdefault("version", 2)
    config["seed"] = seed
    for name, value in values.items():
        set_field(config, name, value, source)
    keep_own_section(config)
    name = f"{group.replace(' ', '_')}-s{seed}"
    share_cpus(config, cpus, name, source)
    return Trial(name=name, group=group, values=values, seed=seed,
                 config=_checked_config(config, name, source))


def corners(sample: dict[str, tuple[str, list]]) -> list[dict[str, Any]]:
    """Settings that reach each distribution's bounds (and each choice), the others at
    their first: what a search may choose, checked before it starts."""
    bounds = {name: list(args) if kind == "choice" else
              [args[0], args[1] - 1 if kind == "randint" else args[1]]
              for name, (kind, args) in sample.items()}
    first = {name: values[0] for name, values in bounds.items()}
    return [first, *({**first, name: value} for name, values in bounds.items()
                     for value in values[1:])]


def keep_own_section(config: dict[str, Any]) -> None:
    """A base may hold the sections of several algorithms (to sweep over `algo`); a
    trial keeps only its own algorithm's."""
    algo = config.get("algo", RunConfig.algo)
    for other in set(registry.names()) - {algo}:
        config.pop(other, None)


def share_cpus(config: dict[str, Any], cpus: int, name: str, source: str) -> None:
    """Each trial's CPU share sets its threads (MuJoCo's, and torch's for the update),
    unless the base sets them, so parallel trials never oversubscribe the machine."""
    config.setdefault("update_threads", cpus)
    if "nthread" not in config:
        family = _checked(lambda: from_dict(copy.deepcopy(config)), name, source)
        if "nthread" in family.family_object().vec_options():
            config["nthread"] = cpus


def set_field(config: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    """config["maml"]["inner_lr"] = value for "maml.inner_lr"."""
    *path, last = dotted.split(".")
    target = config
    for part in path:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise SpecError(f"{source}: field {dotted}: {part} is not a section")
    target[last] = value


def group_label(base: dict[str, Any], values: dict[str, Any], draw: int | None) -> str:
    """algo-family, then the swept values: 'maml-point-nav inner_lr=0.05'."""
    algo = values.get("algo", base.get("algo", RunConfig.algo))
    family = values.get("family", base.get("family", RunConfig.family))
    parts = [f"{name.split('.')[-1]}={_short(value)}" for name, value in values.items()
             if name not in ("algo", "family")]
    label = f"{algo}-{family}" + (" " + " ".join(parts) if parts else "")
    return label + (f" #{draw}" if draw is not None and not parts else "")


def _checked_config(config: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    """The config in its canonical YAML form; SpecError naming the trial and field."""
    return _checked(lambda: to_dict(from_dict(copy.deepcopy(config))), name, source)


def _checked(make: Any, name: str, source: str) -> Any:
    try:
        return make()
    except (ConfigError, ValueError) as error:
        raise SpecError(f"{source}: trial {name}: {error}") from error


def _draw(rng: np.random.Generator, kind: str, args: list) -> Any:
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    return DISTRIBUTIONS[kind](rng, *args)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(_short(v) for v in value)
    return str(value)


def _is_count(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _require(ok: bool, name: str, allowed: str, value: Any, source: str) -> None:
    if not ok:
        raise SpecError(f"{source}: field {name} must be {allowed}, got {value!r}")
