"""The built-in algorithms: every package in this folder is imported, and registers
itself with fewshot.registry (a new algorithm is one folder; no list to edit)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
