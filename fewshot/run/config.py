"""A run's configuration: the settings the training driver reads, plus one section of the
chosen algorithm's own settings, validated before any work starts.

config.yaml holds the common fields, then the algorithm's section under its name:

    version: 2
    algo: maml
    family: point-nav
    family_options: {}
    seed: 0
    ...
    maml: {meta_batch_size: 20, inner_lr: 0.1, ...}

Each field's docstring is its `--help` text. An unknown key, a section of another
algorithm, a wrong type or a value out of range fails with a message naming the field.
Configs written before algorithms had their own sections (no `version`) are migrated
when read (`migrate`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import tasks
from fewshot import plugins, registry
from fewshot.checks import ConfigError, check_types, plain, require, short_repr

VERSION = 2


@dataclass
class RunConfig:
    """Run settings every algorithm shares (each algorithm's own are under --<algo>.*)."""

    algo: str = "maml"
    """Learning algorithm (see `fewshot algorithms`)."""
    family: str = "point-nav"
    """Task family (see `fewshot families`)."""
    family_options: dict[str, Any] = field(default_factory=dict)
    """Options of the family's factory (e.g. train_instances), stored with the run."""
    seed: int = 0
    """Seed of everything random in the run: tasks, env noise, actions, initial weights."""
    iterations: int = 100
    """Training iterations."""
    horizon: int | None = None
    """Steps per episode (default: the family's)."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many iterations (and at the end)."""
    nthread: int | None = None
    """MuJoCo threads (default: all available cores)."""
    torch_threads: int = 1
    """Threads for torch's CPU ops while sampling: small networks gain nothing from more,
    and a second busy thread pool next to MuJoCo's slows both (20x measured on 2 loaded
    cores)."""
    update_threads: int = 1
    """Threads for torch during the update, while MuJoCo is idle. On an otherwise idle
    machine, all cores make MAML's update about 1.5x faster (measured on 2); on a busy
    one, torch's spinning threads can make it many times slower, hence the default."""
    imports: list[str] = field(default_factory=list)
    """Plugin modules to import (families, algorithms), recorded so that every later
    command on the run imports them too."""
    algo_config: Any = None
    """The algorithm's settings (its dataclass); defaults when not given."""

    def __post_init__(self) -> None:
        common = [f.name for f in dataclasses.fields(self) if f.name != "algo_config"]
        for name in common:
            setattr(self, name, plain(getattr(self, name)))
        check_types(RunConfig, {name: getattr(self, name) for name in common})
        _load_imports(self.imports)
        require(self.algo in registry.names(), "algo", f"one of {registry.names()}", self.algo)
        require(self.family in tasks.names(), "family", f"one of {tasks.names()}", self.family)
        try:
            family = tasks.get(self.family, **self.family_options)
        except ValueError as error:
            raise ValueError(f"config field family_options: {error}; {self.family}'s "
                             f"options: {_allowed_options(self.family)}") from error
        self.family_options = dict(family.options)
        require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        for name in ("iterations", "checkpoint_every", "torch_threads", "update_threads"):
            value = getattr(self, name)
            require(value >= 1, name, "an integer >= 1", value)
        require(self.horizon is None or self.horizon >= 1, "horizon",
                "an integer >= 1 or null", self.horizon)
        require(self.nthread is None or self.nthread >= 1, "nthread",
                "an integer >= 1 or null", self.nthread)
        require(self.nthread is None or "nthread" in family.vec_options(), "nthread",
                f"null for {self.family} (only MuJoCo families step on threads)",
                self.nthread)
        settings = registry.get(self.algo).config
        if self.algo_config is None:
            self.algo_config = settings()
        require(isinstance(self.algo_config, settings), self.algo,
                f"{settings.__name__} settings", self.algo_config)
        for f in dataclasses.fields(settings):
            setattr(self.algo_config, f.name, plain(getattr(self.algo_config, f.name)))
        try:
            check_types(settings, dataclasses.asdict(self.algo_config))
        except ConfigError as error:
            raise error.within(self.algo) from error

    @property
    def algorithm(self) -> registry.Algorithm:
        return registry.get(self.algo)

    def family_object(self) -> Any:
        """The task family, built with the run's options."""
        return tasks.get(self.family, **self.family_options)


def _load_imports(imports: Any) -> None:
    require(isinstance(imports, list) and all(isinstance(m, str) and m.strip()
                                              for m in imports),
            "imports", "a list of module names", imports)
    try:
        plugins.load(imports)
    except ValueError as error:
        raise ValueError(f"config field imports: {error}") from error


def _allowed_options(family: str) -> str:
    specs = tasks.options(family)
    if not specs:
        return "none"
    return ", ".join(f"{o.name} ({o.describe()}, default {o.default!r})"
                     for o in specs.values())


COMMON = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "algo_config")


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The YAML form: version, the common fields, then the algorithm's section."""
    values = {name: getattr(config, name) for name in COMMON}
    return {"version": VERSION, **values,
            config.algo: dataclasses.asdict(config.algo_config)}


def from_dict(values: Any, *, source: str = "config") -> RunConfig:
    """A RunConfig from its YAML form (migrating a version-1 layout); ConfigError or
    ValueError name the offending field."""
    if not isinstance(values, dict):
        raise ValueError(f"{source} must be a mapping of settings, got "
                         f"{type(values).__name__}")
    values = migrate(values)
    values.pop("version", None)
    common = {k: values.pop(k) for k in COMMON if k in values}
    imports = common.get("imports", [])
    _load_imports(imports)  # their algorithms may name the sections
    algo = common.get("algo", RunConfig.algo)
    if algo not in registry.names():
        raise ConfigError("algo", f"one of {registry.names()}", algo)
    section = values.pop(algo, {})
    others = [k for k in values if k in registry.names()]
    if others:
        raise ValueError(f"{source}: sections {others} are settings of other algorithms; "
                         f"this run's algo is {algo!r}")
    if values:
        raise ValueError(f"{source}: unknown settings {sorted(values, key=repr)}; the "
                         f"settings are {list(COMMON)} and the section {algo!r}")
    return RunConfig(**common, algo_config=algo_settings(algo, section, source=source))


def algo_settings(algo: str, section: Any, *, source: str = "config") -> Any:
    """The algorithm's settings dataclass from its section; errors name `algo.field`."""
    settings = registry.get(algo).config
    if isinstance(section, settings):
        return section
    if not isinstance(section, dict):
        raise ValueError(f"{source}: section {algo!r} must be a mapping, got "
                         f"{short_repr(section)}")
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(section) - known, key=repr)
    if unknown:
        raise ValueError(f"{source}: unknown settings {[f'{algo}.{k}' for k in unknown]}; "
                         f"{algo}'s settings are {sorted(known)}")
    section = {name: plain(value) for name, value in section.items()}
    try:
        check_types(settings, section)
        return settings(**section)
    except ConfigError as error:
        raise error.within(algo) from error


# Version 1: one TrainConfig for every algorithm, with `maml` and `ppo` sections and the
# shared learning settings at the top level (some of them ignored by some algorithms).
V1_SHARED = ("meta_batch_size", "episodes_per_task", "hidden_sizes", "activation",
             "init_log_std", "gamma", "gae_lambda", "normalize_advantages")
V1_READ_BY = {  # which shared and ppo settings each algorithm actually read in version 1
    "maml": V1_SHARED,
    "rl2": ("meta_batch_size", "init_log_std", "gamma", "gae_lambda", "normalize_advantages",
            "episodes_per_trial", "hidden_size", "bptt_window"),
    "ppo": ("meta_batch_size", "episodes_per_task", "hidden_sizes", "init_log_std", "gamma",
            "gae_lambda", "normalize_advantages"),
}
V1_READ_BY["oracle"] = V1_READ_BY["ppo"]
V1_PPO_UPDATE = ("lr", "ppo_epochs", "minibatches", "clip", "value_coef", "entropy_coef",
                 "max_grad_norm", "scale_rewards")


def is_version1(values: dict[str, Any]) -> bool:
    """Whether a (possibly partial) config is in the version-1 layout: learning settings
    at the top level, where version 2 has none."""
    return "version" not in values and any(k in values for k in V1_SHARED)


def migrate(values: dict[str, Any], *, algo: str | None = None) -> dict[str, Any]:
    """A version-1 config in the version-2 layout, with the same behaviour: each
    algorithm's section gets exactly the settings it read; settings it ignored are
    dropped (the ppo and oracle policies used tanh whatever `activation` said, so their
    migrated activation is tanh). `algo`: the algorithm of a partial config that does not
    name one (default maml). Version-2 configs are returned unchanged."""
    if "version" in values:
        if values["version"] != VERSION:
            raise ValueError(f"config version {values['version']!r} is not one this "
                             f"fewshot reads (version {VERSION})")
        return dict(values)
    old = dict(values)
    algo = old.get("algo", algo or "maml")
    require(isinstance(algo, str), "algo", f"one of {list(V1_READ_BY)}", algo)
    maml, ppo = old.pop("maml", {}) or {}, old.pop("ppo", {}) or {}
    for name, section in (("maml", maml), ("ppo", ppo)):
        require(isinstance(section, dict), name, "a mapping of settings", section)
    shared = {k: old.pop(k) for k in V1_SHARED if k in old}
    if algo == "maml":
        section = {**shared, **maml}
    elif algo in V1_READ_BY:
        pool = {**shared, **ppo}
        section = {k: pool[k] for k in V1_READ_BY[algo] + V1_PPO_UPDATE if k in pool}
        if algo in ("ppo", "oracle"):
            section["activation"] = "tanh"
    else:
        raise ValueError(f"a version-1 config of algo {algo!r} cannot be migrated")
    return {"version": VERSION, **old, "family_options": {}, "imports": [], algo: section}
