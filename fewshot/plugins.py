"""Plugins: users' modules that register task families and algorithms.

Two ways in, both reaching every command and every worker process:
- an entry point in the group `fewshot.plugins` of an installed package (its value a
  module, or a function to call: `myfamilies = "mypkg.fewshot_plugin"`), loaded the
  first time fewshot's algorithm registry is consulted and by every command (a script
  that only uses `tasks` calls `fewshot.plugins.load()` to see plugin families);
- `--import MODULE` on the command line (repeatable). A run records its imports in its
  config.yaml, so `fewshot evaluate RUN` and `fewshot train --resume` re-import them.

Importing a module twice does nothing (Python caches it); its `tasks.register` and
`fewshot.registry.register` calls run once.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

ENTRY_POINT_GROUP = "fewshot.plugins"

_entry_points_loaded = False


def load(modules: Iterable[str] = ()) -> None:
    """Load the installed entry points (once), then import each module given."""
    load_entry_points()
    for module in modules:
        import_plugin(module)


def import_plugin(module: str) -> None:
    """Import a plugin module; a clear error if it is missing or fails."""
    if not isinstance(module, str) or not module.strip():
        raise ValueError(f"a plugin is named by a module, e.g. mypkg.families; got {module!r}")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and (module == error.name or module.startswith(error.name + ".")):
            raise ValueError(f"plugin module {module!r} not found (given with --import or "
                             "in a run's imports); is its folder on PYTHONPATH?") from error
        raise ValueError(f"plugin module {module!r} failed at import: {error}") from error
    except Exception as error:  # a plugin's own bug: name it, keep the cause
        raise ValueError(f"plugin module {module!r} failed at import: "
                         f"{type(error).__name__}: {error}") from error


def load_entry_points() -> None:
    """Load every `fewshot.plugins` entry point of the installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded):
                loaded()
        except Exception as error:
            raise ValueError(f"plugin entry point {entry.name!r} ({entry.value}) of group "
                             f"{ENTRY_POINT_GROUP} failed: {type(error).__name__}: "
                             f"{error}") from error
