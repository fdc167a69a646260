"""The algorithm registry: names -> algorithms, and the reference learners every run can
be scored against.

An algorithm is one folder (fewshot/algos/<name>/, or a user's module) that registers an
`Algorithm`: its settings dataclass (`--<name>.field` flags, the `<name>:` section of a
run's config.yaml), how to build its networks, its trainer, and the learners it offers
the harness ("trained" at least). `fewshot train`, `fewshot evaluate` and sweeps find
everything through here, so a new algorithm is one `register` call and no other edit.

Reference learners need no training (the random policy, a family's scripted oracle,
UCB1): `register_reference` adds one; `fewshot evaluate RUN --learner NAME` scores it on
the run's family.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fewshot.collect.spec import EnvSpec
from fewshot.eval.learner import Learner


@dataclass(frozen=True)
class TrainContext:
    """What a trainer is given besides its model and settings."""

    family: Any            # the tasks.TaskFamily, built with the run's family options
    seed: int              # the run's seed: derive every generator from (seed, iteration, ...)
    horizon: int | None    # steps per episode (None: the family's)
    nthread: int | None    # MuJoCo threads (None: all available cores)


class Model(Protocol):
    """An algorithm's learnable state (networks, optimizer): what a checkpoint holds as
    its "learner" and what evaluation loads."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: Mapping) -> None: ...


class Trainer(Protocol):
    """One training iteration, split in two so the driver can time and thread each part:
    `collect` (sampling, and any adaptation) then `update`. Both return metrics rows."""

    env_steps: int
    """Env-steps of the episodes collected so far (the valid steps of its batches); the
    driver saves it in checkpoints and sets it again on resume."""

    def collect(self, iteration: int) -> tuple[Any, dict[str, float]]: ...

    def update(self, data: Any, iteration: int) -> dict[str, float]: ...

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        """The few numbers the progress bar shows."""
        ...

    def state_dict(self) -> dict:
        """Trainer state beyond the model (a replay buffer); {} if none."""
        ...

    def load_state_dict(self, state: Mapping) -> None: ...


LearnerFactory = Callable[..., Learner]
"""factory(model, config, *, name, **options) -> Learner; options are keyword-only."""


@dataclass(frozen=True)
class Algorithm:
    """Everything the rest of fewshot needs to know about one algorithm."""

    name: str
    config: type
    """Its settings: a dataclass, each field with a default and a docstring (--help)."""
    build: Callable[[Any, EnvSpec], Model]
    """build(config, spec) -> the model with initial weights (torch is seeded first)."""
    trainer: Callable[[Model, Any, TrainContext], Trainer]
    learners: Mapping[str, LearnerFactory]
    """The learners it offers the harness; "trained" is the default one."""
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"algorithm name must be letters, digits, - or _, got "
                             f"{self.name!r}")
        if not dataclasses.is_dataclass(self.config):
            raise ValueError(f"algorithm {self.name!r}: config must be a dataclass, got "
                             f"{self.config!r}")
        if "trained" not in self.learners:
            raise ValueError(f"algorithm {self.name!r} must offer a 'trained' learner; it "
                             f"offers {sorted(self.learners)}")


@dataclass(frozen=True)
class Reference:
    """A learner that needs no training, for any family it supports."""

    name: str
    make: Callable[..., Learner]
    """make(family, *, name) -> Learner; raises ValueError for a family it cannot serve."""
    doc: str = ""


class _Named:
    """Registered things of one kind, by name."""

    def __init__(self, kind: str) -> None:
        self.kind, self.entries = kind, {}

    def add(self, name: str, entry: Any) -> Any:
        _load_builtins()
        if name in self.entries:
            raise ValueError(f"{self.kind} named {name!r} is already registered")
        self.entries[name] = entry
        return entry

    def get(self, name: str) -> Any:
        _load_builtins()
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {self.names()}")
        return self.entries[name]

    def names(self) -> list[str]:
        _load_builtins()
        return list(self.entries)


_algorithms = _Named("algorithm")
_references = _Named("reference learner")
BUILTIN_MODULES = ("fewshot.algos", "fewshot.references")


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm; its name must be new."""
    if not isinstance(algorithm, Algorithm):
        raise ValueError(f"register takes an Algorithm, got {type(algorithm).__name__}")
    return _algorithms.add(algorithm.name, algorithm)


def get(name: str) -> Algorithm:
    return _algorithms.get(name)


def names() -> list[str]:
    return _algorithms.names()


def register_reference(reference: Reference) -> Reference:
    if not isinstance(reference, Reference):
        raise ValueError(f"register_reference takes a Reference, got "
                         f"{type(reference).__name__}")
    return _references.add(reference.name, reference)


def reference(name: str) -> Reference:
    return _references.get(name)


def reference_names() -> list[str]:
    return _references.names()


_loading = False
def _load_builtins() -> None:
    """Import the built-in algorithms and references once (they register themselves),
    then the installed plugins' entry points."""
    global _loading
    if _loading:
        return
    _loading = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    from fewshot import plugins  # deferred: plugins register through this module

    plugins.load_entry_points()
