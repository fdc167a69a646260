"""BatchedEnv: N simulations of a family's tasks behind gymnasium's VectorEnv API.

The env owns what every family shares: task bookkeeping, per-env random generators,
the fixed-horizon truncation, autoreset, episode outcome flags (`info["outcome_<name>"]`)
and checking what crosses the boundary: the user's actions, seeds and masks on the way
in, and the simulator's arrays on the way out. The physics lives in a `Simulator`
(MuJoCo batch, or numpy for point-nav) that steps all N simulations at once and never
loops over envs in Python.

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


def closed_env_error(factory: str) -> RuntimeError:
    """The error for using an env after close(); `factory` is "make_vec" or "make_env"."""
    return RuntimeError(f"this env was closed; make a new one with family.{factory}(...)")


class SingleEnvGuard:
    """What every family's single (reference) env refuses, mixed in before its gymnasium
    base class: use after close(), and a step before reset() (after construction and after
    set_task). The env sets `_needs_reset` when its task changes and clears it in reset."""

    _closed = False
    _needs_reset = True

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise closed_env_error("make_env")

    def check_ready(self) -> None:
        """Refuse a step after close() or before reset(); every step calls it first."""
        self._refuse_if_closed()
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (after construction and after "
                               "set_task)")

    def close(self) -> None:
        self._closed = True
        super().close()


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
        [N, A] finite floats for a Box action space (possibly outside the box: the
        simulator clips them), [N] integers in range for a Discrete one."""


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

    Misuse raises at once: a ValueError for actions of the wrong shape or dtype, NaN or
    inf actions (naming the envs and their values), a bad seed or reset mask; a
    RuntimeError for step() before reset() (or after set_tasks) and for any use after
    close(). Box actions outside the action box are not refused; the simulator clips
    them to it.
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
        self._idle = np.zeros(self.num_envs, dtype=bool)
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape))
        self._needs_reset = True
        self.set_tasks(tasks)

    @property
    def tasks(self) -> list[Any]:
        return list(self._tasks)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Swap every simulation's task without rebuilding; call reset() before step()."""
        self._refuse_if_closed()
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks needs {self.num_envs} tasks (one per env), "
                             f"got {len(tasks)}")
        self.sim.set_tasks(self.family.task_arrays(tasks))
        self._tasks = tasks
        self._needs_reset = True

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._refuse_if_closed()
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
        self._refuse_if_closed()
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (after construction and after "
                               "set_tasks)")
        action_NA = self._check_actions(actions)
        awake_N = ~self._idle
        resetting_N = self._autoreset & awake_N
        active_N = ~self._autoreset & awake_N
        out = self.sim.step(action_NA, active_N)
        self._check_sim_step(out)
        self._elapsed[active_N] += 1
        terminated_N = out.terminated_N & active_N
        truncated_N = (self._elapsed >= self.horizon) & active_N
        reward_N = np.where(active_N, out.reward_N, 0.0)
        obs = out.obs_NO.copy()
        obs[self._idle] = self._obs[self._idle]
        self._obs = obs
        if resetting_N.any():
            self._reset_ids(np.flatnonzero(resetting_N))
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._autoreset = terminated_N | truncated_N
        info = {"diverged": out.diverged_N & active_N}
        info.update({f"reward_{k}": np.where(active_N, v, 0.0) for k, v in out.terms.items()})
        info.update({f"outcome_{k}": v & active_N for k, v in out.outcomes.items()})
        return self._obs.copy(), reward_N, terminated_N, truncated_N, info

    def set_idle(self, mask: Any) -> None:
        """Stop stepping the simulations in `mask` (a bool array [N]) until each is next
        reset. step() leaves their state as it is, repeats their last observation and
        reports reward 0, no termination and no truncation for them (and no autoreset). A
        collector idles the simulations whose trials have ended, so they cost no physics
        while the others finish."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_envs,):
            raise ValueError(f"set_idle needs a bool array of shape ({self.num_envs},), "
                             f"got {mask.dtype} {mask.shape}")
        self._idle = mask.copy()

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise closed_env_error("make_vec")

    def _check_sim_step(self, out: SimStep) -> None:
        """A simulator's step must return one entry per env: refuse it loudly otherwise."""
        where = f"the simulator of {self.family.name!r} ({type(self.sim).__name__})"
        if set(out.outcomes) != set(self.family.outcomes):
            raise RuntimeError(f"{where} flagged outcomes {sorted(out.outcomes)}; the "
                               f"family declares {sorted(self.family.outcomes)}")
        n = self.num_envs
        shapes = {"obs_NO": (out.obs_NO, (n, *self.single_observation_space.shape)),
                  "reward_N": (out.reward_N, (n,)), "terminated_N": (out.terminated_N, (n,)),
                  "diverged_N": (out.diverged_N, (n,)),
                  **{f"terms[{k!r}]": (v, (n,)) for k, v in out.terms.items()},
                  **{f"outcomes[{k!r}]": (v, (n,)) for k, v in out.outcomes.items()}}
        for name, (value, shape) in shapes.items():
            if np.shape(value) != shape:
                raise RuntimeError(f"{where} returned {name} of shape {np.shape(value)}; "
                                   f"expected {shape}, one entry per env")
        flags = {"terminated_N": out.terminated_N, "diverged_N": out.diverged_N,
                 **{f"outcomes[{k!r}]": v for k, v in out.outcomes.items()}}
        for name, value in flags.items():
            if np.asarray(value).dtype != bool:
                raise RuntimeError(f"{where} returned {name} of dtype "
                                   f"{np.asarray(value).dtype}; expected bool")

    def _reset_ids(self, ids: np.ndarray) -> None:
        obs = self.sim.reset(ids, [self._rngs[i] for i in ids])
        want = (len(ids), *self.single_observation_space.shape)
        if np.shape(obs) != want:
            raise RuntimeError(f"the simulator of {self.family.name!r} "
                               f"({type(self.sim).__name__}) reset {len(ids)} envs and "
                               f"returned observations of shape {np.shape(obs)}; expected "
                               f"{want}")
        self._obs[ids] = obs
        self._elapsed[ids] = 0
        self._autoreset[ids] = False
        self._idle[ids] = False

    def _seeds(self, seed: int | Sequence[int]) -> list[int]:
        def is_seed(s: Any) -> bool:
            return isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0

        if is_seed(seed):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed) if isinstance(seed, Sequence | np.ndarray) else []
        if len(seeds) != self.num_envs or not all(is_seed(s) for s in seeds):
            raise ValueError(f"seed must be an integer >= 0, or {self.num_envs} of them "
                             f"(one per env), got {seed!r}")
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
            bad = np.flatnonzero(~finite)
            shown = "; ".join(f"env {i}: {action[i].tolist()}" for i in bad[:5])
            more = f" (and {len(bad) - 5} more envs)" if len(bad) > 5 else ""
            raise ValueError(f"actions must be finite; NaN or inf in {len(bad)} of "
                             f"{self.num_envs} envs: {shown}{more}")
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
