"""Building blocks of the families simulated with numpy (point-nav, bandit,
guessing-game): the reference env's task handling, and the two env factories.

A numpy family writes a `Simulator` (N simulations with array operations, see
`tasks/vector.py`) and a reference env with scalars: a `TaskEnv` that says how an
episode starts (`first_observation`) and how it steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

from tasks.family import TaskFamily, check_seed
from tasks.vector import BatchedEnv, SingleEnvGuard


class TaskEnv(SingleEnvGuard, gymnasium.Env):
    """A reference env of one task: `set_task`, or `reset(options={"task": ...})`. Each
    family's `step` calls `check_ready()` first."""

    metadata = {"render_modes": []}

    def __init__(self, *, family: TaskFamily, task: Any) -> None:
        self.family = family
        self.set_task(task)

    def set_task(self, task: Any) -> None:
        """Use `task` from the next reset on."""
        self.task = self.family.check_task(task)
        self._needs_reset = True

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._refuse_if_closed()
        check_seed(seed)
        super().reset(seed=None if seed is None else int(seed))
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"reset options must be a mapping, e.g. {{'task': task}}, got "
                             f"{type(options).__name__}")
        options = dict(options or {})
        if "task" in options:
            self.set_task(options.pop("task"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; allowed: 'task'")
        self._needs_reset = False
        return self.first_observation(), {}

    def first_observation(self) -> np.ndarray:
        raise NotImplementedError


def check_choice(action: Any, n: int, what: str) -> int:
    """A discrete action as an int in [0, n), or a ValueError naming what is wrong."""
    choice = np.asarray(action)
    if choice.dtype.kind not in "iu" or choice.shape != ():
        raise ValueError(f"action must be one integer {what} index in [0, {n}), got "
                         f"{action!r} (dtype {choice.dtype}, shape {choice.shape})")
    if not 0 <= int(choice) < n:
        raise ValueError(f"action must be a {what} index in [0, {n}), got {int(choice)}")
    return int(choice)


def env_factories(simulator: Callable[[int], Any], reference: type[TaskEnv]
                  ) -> tuple[Callable[..., BatchedEnv], Callable[..., TaskEnv]]:
    """make_vec and make_env for a TaskFamily, from a simulator class (built with the
    number of simulations) and a reference env class."""
    def make_vec(family: TaskFamily, tasks: Sequence[Any], *, seed: int | None = None,
                 horizon: int | None = None, autoreset_mode: str = "next-step") -> BatchedEnv:
        return BatchedEnv(family=family, simulator=simulator(len(tasks)), tasks=tasks,
                          horizon=family.horizon if horizon is None else horizon,
                          autoreset_mode=autoreset_mode, seed=seed)

    def make_env(family: TaskFamily, task: Any) -> TaskEnv:
        return reference(family=family, task=task)
    return make_vec, make_env
