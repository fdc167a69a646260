"""Input checks shared by every boundary: a value that is not allowed fails with a message
naming the field, what it allows and what it got."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from tasks.regions import short_repr

INT64_MAX = 2**63 - 1  # integers reach numpy and torch, whose integers are 64-bit


class MissingExtraError(ImportError):
    """A feature whose optional dependencies are not installed; the message names the
    extra that installs them."""


class ConfigError(ValueError):
    """A setting out of its allowed range; `field` names it (dotted inside a section)."""

    def __init__(self, field: str, allowed: str, value: object) -> None:
        super().__init__(f"config field {field} must be {allowed}, got {short_repr(value)}")
        self.field, self.allowed, self.value = field, allowed, value

    def __reduce__(self) -> tuple:  # so it crosses processes (a sweep's workers)
        return type(self), (self.field, self.allowed, self.value)

    def within(self, section: str) -> ConfigError:
        """The same error, its field named inside `section` (maml.inner_lr)."""
        return ConfigError(f"{section}.{self.field}", self.allowed, self.value)


def require(ok: bool, field: str, allowed: str, value: object) -> None:
    """Raise ConfigError(field, allowed, value) unless `ok`."""
    if not ok:
        raise ConfigError(field, allowed, value)


def check_count(owner: str, **counts: object) -> None:
    """Each count must be an integer >= 1 (not a bool); the error names it."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def check_types(settings: type, values: Mapping[str, Any]) -> None:
    """Check each value against the type its field of the dataclass `settings` declares,
    before the dataclass compares it with anything; ConfigError names the field.

    Understood: int (not a bool, within 64 bits), float (an int or float, finite), bool,
    str, list[X], dict[str, X], X | None, Literal[...] and Any. A field of another type
    is left to the dataclass's own checks.
    """
    hints = typing.get_type_hints(settings)
    for name, value in values.items():
        if name in hints:
            problem = _problem(hints[name], value)
            if problem:
                raise ConfigError(name, problem, value)


def plain(value: Any) -> Any:
    """numpy scalars (in lists and mappings too) as Python values: what a config holds
    must be writable as YAML."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _problem(kind: Any, value: Any) -> str | None:
    """What `value` should be if it is not a `kind`, else None."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return None
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return "an integer"
        return None if abs(int(value)) <= INT64_MAX else "an integer of at most 64 bits"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                              np.floating)):
            return "a number"
        try:
            return None if math.isfinite(value) else "a finite number"
        except OverflowError:  # an int too large for a float
            return "a finite number"
    if kind is str:
        return None if isinstance(value, str) else "a string"
    if origin is Literal:
        ok = any(type(value) is type(a) and value == a for a in args)
        return None if ok else f"one of {list(args)}"
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        others = [a for a in args if a is not type(None)]
        if value is None or len(others) != 1:
            return None
        problem = _problem(others[0], value)
        return None if problem is None else f"{problem} or null"
    if origin is list and len(args) == 1:
        if not isinstance(value, list):
            return f"a list, each item {_allowed(args[0])}"
        for item in value:
            problem = _problem(args[0], item)
            if problem:
                return f"a list, each item {problem}"
        return None
    if origin is dict and len(args) == 2:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return "a mapping of names to values"
        for item in value.values():
            problem = _problem(args[1], item)
            if problem:
                return f"a mapping of names to values, each {problem}"
        return None
    return None


def _allowed(kind: Any) -> str:
    """What a `kind` must be, in words: the problem of a value that is nothing at all."""
    return _problem(kind, _NOTHING) or "anything"


_NOTHING = object()
