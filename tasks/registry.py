"""The family registry: names -> family factories with typed options, and the families
built from them (one per set of options, built once per process).

A factory is a function with keyword-only, typed, defaulted parameters, its options:

    def guessing_game(*, classes: int = 4, train_instances: int = 256) -> TaskFamily: ...

`get("guessing-game", train_instances=64)` checks each option against the factory's
signature (name and type) before calling it, so a typo or a string where an integer
belongs fails with a message naming the option and what it allows. A family records the
options it was built with and the module that registered it, so its tasks can be
rebuilt in a fresh process (tasks pickle as family name, options, origin and values).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import gymnasium

from tasks.family import TaskFamily
from tasks.regions import short_repr

Factory = Callable[..., TaskFamily]
OPTION_TYPES = (int, float, bool, str)


@dataclass(frozen=True)
class Option:
    """One option of a family factory: its type (int, float, bool, str or a Literal of
    allowed values) and default."""

    name: str
    type: Any
    default: Any

    def describe(self) -> str:
        if typing.get_origin(self.type) is Literal:
            return f"one of {list(typing.get_args(self.type))}"
        return {int: "an integer", float: "a finite number", bool: "true or false",
                str: "a string"}[self.type]

    def check(self, family: str, value: Any) -> Any:
        """`value` as this option's type, or a ValueError naming the option."""
        kind = self.type
        if typing.get_origin(kind) is Literal:
            ok = any(type(value) is type(a) and value == a for a in typing.get_args(kind))
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            try:
                ok = ok and math.isfinite(value)
            except OverflowError:  # an int too large for a float
                ok = False
            value = float(value) if ok else value
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ValueError(f"family {family!r}: option {self.name} must be "
                             f"{self.describe()}, got {short_repr(value)}")
        return value


@dataclass
class _Entry:
    factory: Factory
    options: dict[str, Option]
    origin: str | None           # the module that registered the family


_entries: dict[str, _Entry] = {}
_built: dict[tuple[str, tuple], TaskFamily] = {}


def names() -> list[str]:
    """The registered family names."""
    return list(_entries)


def options(name: str) -> dict[str, Option]:
    """The options a family's factory takes, by name."""
    return dict(_entry(name).options)


def get(name: str, **given: Any) -> TaskFamily:
    """The family registered under `name`, built with `given` options (the rest at their
    defaults). The same options give the same family object."""
    entry = _entry(name)
    unknown = sorted(set(given) - set(entry.options), key=str)
    if unknown:
        allowed = sorted(entry.options) or "none"
        raise ValueError(f"family {name!r} has no options {unknown}; its options: {allowed}")
    resolved = {o.name: o.check(name, given[o.name]) if o.name in given else o.default
                for o in entry.options.values()}
    key = (name, tuple(sorted(resolved.items())))
    if key not in _built:
        family = entry.factory(**resolved)
        if not isinstance(family, TaskFamily) or family.name != name:
            raise ValueError(f"the factory of family {name!r} returned {family!r}, not a "
                             f"TaskFamily named {name!r}")
        family.options = MappingProxyType(resolved)
        family.origin = entry.origin
        _built[key] = family
    return _built[key]


def register(family: TaskFamily | Factory) -> TaskFamily:
    """Register a family, or a factory of families (built once here, with its default
    options, to learn its name and check it). Also registers the family with gymnasium
    as `family.env_id`. Returns the family with default options."""
    if isinstance(family, TaskFamily):
        built = family
        factory: Factory = lambda: built  # noqa: E731  (a family with no options)
    elif callable(family):
        factory = family
        built = None
    else:
        raise ValueError(f"register takes a TaskFamily or a factory of one, got "
                         f"{type(family).__name__}")
    specs = _option_specs(factory)
    if built is None:
        built = factory(**{o.name: o.default for o in specs.values()})
        if not isinstance(built, TaskFamily):
            raise ValueError(f"factory {getattr(factory, '__name__', factory)!r} returned "
                             f"{type(built).__name__}, not a TaskFamily")
    if built.name in _entries:
        raise ValueError(f"a task family named {built.name!r} is already registered")
    origin = _caller_module()
    _entries[built.name] = _Entry(factory=factory, options=specs, origin=origin)
    defaults = {o.name: o.default for o in specs.values()}
    built.options = MappingProxyType(defaults)
    built.origin = origin
    _built[(built.name, tuple(sorted(defaults.items())))] = built
    # entry points name the family rather than hold it: gymnasium deep-copies specs
    gymnasium.register(id=built.env_id, entry_point=functools.partial(_make_env, built.name),
                       vector_entry_point=functools.partial(_make_vec, built.name),
                       max_episode_steps=built.horizon)
    return built


def rebuild(name: str, family_options: Mapping[str, Any], origin: str | None) -> TaskFamily:
    """The family a pickled task came from: registered here already, or by importing the
    module that registered it where the task was made."""
    if name not in _entries and origin and origin != "__main__":
        importlib.import_module(origin)
    if name not in _entries:
        raise ValueError(f"a task of family {name!r} cannot be rebuilt: the family is not "
                         f"registered in this process (registered by {origin or 'unknown'}); "
                         "register it in an importable module (fewshot --import MODULE)")
    return get(name, **family_options)


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _entries:
        raise ValueError(f"unknown task family {short_repr(name)}; known families: {names()}")
    return _entries[name]


def _option_specs(factory: Factory) -> dict[str, Option]:
    """A factory's options from its signature: keyword-only, annotated, with defaults."""
    where = f"family factory {getattr(factory, '__name__', factory)!r}"
    hints = typing.get_type_hints(factory)
    specs = {}
    for p in inspect.signature(factory).parameters.values():
        if p.kind != inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
            raise ValueError(f"{where}: option {p.name} must be keyword-only with a default")
        kind = hints.get(p.name)
        if kind not in OPTION_TYPES and typing.get_origin(kind) is not Literal:
            raise ValueError(f"{where}: option {p.name} needs a type among int, float, "
                             f"bool, str or a Literal, got {kind!r}")
        specs[p.name] = Option(name=p.name, type=kind, default=p.default)
    return specs


def _caller_module() -> str | None:
    """The module that called register(), found on the stack past this module."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return None if frame is None else frame.f_globals.get("__name__")


def _make_env(name: str, family_options: Mapping[str, Any] | None = None,
              **kwargs: Any) -> gymnasium.Env:
    return get(name, **dict(family_options or {}))._build_env(**kwargs)


def _make_vec(name: str, family_options: Mapping[str, Any] | None = None,
              **kwargs: Any) -> gymnasium.vector.VectorEnv:
    return get(name, **dict(family_options or {}))._build_vec(**kwargs)
