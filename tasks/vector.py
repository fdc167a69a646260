"""BatchedEnv: N simulations of a family's tasks behind gymnasium's VectorEnv API.

The env owns what every family shares: task bookkeeping, per-env random generators,
the fixed-horizon truncation, autoreset, episode outcome flags (`info["outcome_<name>"]`)
and checking actions at the boundary. The
physics lives in a `Simulator` (MuJoCo batch, or numpy for point-nav) that steps all N
simulations at once and never loops over envs in Python.

Letters in names: N environments, O observation size, A action size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

AUTORESET_MODES = {"next-step": AutoresetMode.NEXT_STEP, "disabled": AutoresetMode.DISABLED}


@dataclass
class SimStep:
    """What a simulator returns for one step of all N simulations."""

    obs_NO: np.ndarray
    reward_N: np.ndarray
    terms: dict[str, np.ndarray]  # named reward terms, each [N]; they sum to reward_N
    terminated_N: np.ndarray
    diverged_N: np.ndarray
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)
    """The family's declared outcomes, each a bool array [N]: it happened at this step."""


class Simulator(Protocol):
    """The physics of N simulations with per-simulation task parameters."""

    single_observation_space: gymnasium.spaces.Box
    single_action_space: gymnasium.spaces.Box | gymnasium.spaces.Discrete

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        """Task parameters as arrays [N]; takes effect at the next reset."""

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Reset simulations `ids` (sorted), drawing noise from rngs[i]; obs [len(ids), O]."""

    def step(self, action_NA: np.ndarray, active_N: np.ndarray) -> SimStep:
        """Step the active simulations; entries of inactive ones are ignored. Actions are
        [N, A] floats for a Box action space, [N] integers for a Discrete one."""


class BatchedEnv(gymnasium.vector.VectorEnv):
    """A family's batched env. Build it with `family.make_vec(tasks, seed=..., ...)`.

    Args:
        family: the TaskFamily the tasks belong to.
        simulator: the physics for len(tasks) simulations.
        tasks: one task per simulation.
        horizon: env-steps before an episode is truncated.
        autoreset_mode: "next-step" (gymnasium's default: the step after an episode ends
            returns the first observation of the next one, with reward 0) or "disabled"
            (reset done envs yourself with `reset(options={"reset_mask": mask})`).
        seed: seeds env i's generator with seed + i at the first reset, unless reset is
            given a seed.
    """

    def __init__(self, *, family: Any, simulator: Simulator, tasks: Sequence[Any],
                 horizon: int, autoreset_mode: str = "next-step",
                 seed: int | None = None) -> None:
        if autoreset_mode not in AUTORESET_MODES:
            raise ValueError(f"autoreset_mode must be one of {list(AUTORESET_MODES)}, "
                             f"got {autoreset_mode!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) \
                or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        self.family = family
        self.sim = simulator
        self.num_envs = len(tasks)
        self.horizon = int(horizon)
        self.metadata = {"autoreset_mode": AUTORESET_MODES[autoreset_mode]}
        self.single_observation_space = simulator.single_observation_space
        self.single_action_space = simulator.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._action_shape = (self.num_envs, *self.single_action_space.shape)
        self._initial_seed = seed
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape))
        self._needs_reset = True
        self.set_tasks(tasks)

    @property
    def tasks(self) -> list[Any]:
        return list(self._tasks)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Swap every simulation's task without rebuilding; call reset() before step()."""
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks needs {self.num_envs} tasks (one per env), "
                             f"got {len(tasks)}")
        self.sim.set_tasks(self.family.task_arrays(tasks))
        self._tasks = tasks
        self._needs_reset = True

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if "tasks" in options:
            self.set_tasks(options.pop("tasks"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; allowed: "
                             "'reset_mask', 'tasks'")
        if mask is None:
            ids = np.arange(self.num_envs)
        else:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must be a bool array of shape "
                                 f"({self.num_envs},), got {mask.dtype} {mask.shape}")
            if self._needs_reset and not mask.all():
                raise ValueError("the first reset (and the one after set_tasks) must reset "
                                 "every env")
            ids = np.flatnonzero(mask)
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        if seed is not None:
            seeds = self._seeds(seed)
            for i in ids:
                self._rngs[i] = np.random.default_rng(seeds[i])
        self._reset_ids(ids)
        self._needs_reset = False
        return self._obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, np.ndarray]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (after construction and after "
                               "set_tasks)")
        action_NA = self._check_actions(actions)
        resetting_N = self._autoreset.copy()
        active_N = ~resetting_N
        out = self.sim.step(action_NA, active_N)
        self._elapsed[active_N] += 1
        terminated_N = out.terminated_N & active_N
        truncated_N = (self._elapsed >= self.horizon) & active_N
        reward_N = np.where(active_N, out.reward_N, 0.0)
        self._obs = out.obs_NO.copy()
        if resetting_N.any():
            self._reset_ids(np.flatnonzero(resetting_N))
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._autoreset = terminated_N | truncated_N
        if set(out.outcomes) != set(self.family.outcomes):
            raise RuntimeError(f"the simulator of {self.family.name!r} flagged outcomes "
                               f"{sorted(out.outcomes)}; the family declares "
                               f"{sorted(self.family.outcomes)}")
        info = {"diverged": out.diverged_N & active_N}
        info.update({f"reward_{k}": np.where(active_N, v, 0.0) for k, v in out.terms.items()})
        info.update({f"outcome_{k}": v & active_N for k, v in out.outcomes.items()})
        return self._obs.copy(), reward_N, terminated_N, truncated_N, info

    def _reset_ids(self, ids: np.ndarray) -> None:
        self._obs[ids] = self.sim.reset(ids, [self._rngs[i] for i in ids])
        self._elapsed[ids] = 0
        self._autoreset[ids] = False

    def _seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs or not all(isinstance(s, (int, np.integer))
                                                  for s in seeds):
            raise ValueError(f"seed must be an int or {self.num_envs} ints, got {seed!r}")
        return [int(s) for s in seeds]

    def _check_actions(self, actions: Any) -> np.ndarray:
        if isinstance(self.single_action_space, gymnasium.spaces.Discrete):
            return self._check_discrete_actions(actions)
        action = np.asarray(actions)
        if action.dtype.kind != "f":
            raise ValueError(f"actions must be floating point (float32 or float64), got "
                             f"dtype {action.dtype}")
        if action.shape != self._action_shape:
            raise ValueError(f"actions must have shape {self._action_shape} "
                             f"(num_envs, action size), got {action.shape}")
        finite = np.isfinite(action).all(axis=1)
        if not finite.all():
            raise ValueError(f"actions contain NaN or inf, in envs "
                             f"{np.flatnonzero(~finite)[:10].tolist()}")
        return action.astype(np.float64, copy=False)

    def _check_discrete_actions(self, actions: Any) -> np.ndarray:
        action = np.asarray(actions)
        n = int(self.single_action_space.n)
        if action.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers (one choice in [0, {n}) per env), "
                             f"got dtype {action.dtype}")
        if action.shape != self._action_shape:
            raise ValueError(f"actions must have shape {self._action_shape} (num_envs,), "
                             f"got {action.shape}")
        bad = (action < 0) | (action >= n)
        if bad.any():
            raise ValueError(f"actions must be in [0, {n}), got {action[bad][:10].tolist()} "
                             f"in envs {np.flatnonzero(bad)[:10].tolist()}")
        return action.astype(np.int64, copy=False)

    def close_extras(self, **kwargs: Any) -> None:
        self.sim = None
