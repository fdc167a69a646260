"""Input checks shared by every boundary: a value that is not allowed fails with a message
naming the field, what it allows and what it got."""

from __future__ import annotations

import numpy as np


class ConfigError(ValueError):
    """A setting out of its allowed range; `field` names it (dotted inside a section)."""

    def __init__(self, field: str, allowed: str, value: object) -> None:
        super().__init__(f"config field {field} must be {allowed}, got {value!r}")
        self.field, self.allowed, self.value = field, allowed, value

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
