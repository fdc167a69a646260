"""LocomotionSim: N MuJoCo simulations stepped together by mujoco.batch, each with its
own task parameters; the Simulator behind a locomotion family's BatchedEnv."""

from __future__ import annotations

import os
from collections.abc import Sequence

import mujoco
import mujoco.batch
import numpy as np
from gymnasium import spaces

from tasks.locomotion.dynamics import Factors, combined_factors, model_field
from tasks.locomotion.observations import observation_size, observe
from tasks.locomotion.robots import PhysicsState, Robot, quiet_mujoco
from tasks.locomotion.transition import instability_counts, outcome
from tasks.vector import SimStep


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class LocomotionSim:
    """A robot, a reward part, dynamics parts and observation parts, simulated N at a time.

    Args:
        robot, reward, dynamics, observation: the family's parts.
        num_envs: N, the number of simulations.
        nthread: native threads stepping them (default: the cores available).
    """

    def __init__(self, *, robot: Robot, reward, dynamics: Sequence, num_envs: int,
                 observation: Sequence = (), nthread: int | None = None) -> None:
        if nthread is not None and (isinstance(nthread, bool) or not isinstance(nthread, int)
                                    or nthread < 1):
            raise ValueError(f"nthread must be an integer >= 1, got {nthread!r}")
        self.robot = robot
        self.reward = reward
        self.dynamics = tuple(dynamics)
        self.observation = tuple(observation)
        self.batch = mujoco.batch.Batch(robot.model, nsim=num_envs,
                                        nthread=nthread or available_cores())
        b = self.batch
        self._state = PhysicsState(qpos=b.bind("qpos"), qvel=b.bind("qvel"),
                                   cfrc_ext=b.bind("cfrc_ext"))
        self._ctrl = b.bind("ctrl")
        self._task: dict[str, np.ndarray] = {}
        # each simulation's generator, as its last reset gave it (observation noise)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        obs_size = observation_size(self.observation, robot.observe(self._state).shape[1])
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (obs_size,), np.float64)
        low, high = robot.model.actuator_ctrlrange.astype(np.float32).T
        self.single_action_space = spaces.Box(low, high, dtype=np.float32)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self._task = task
        if self.dynamics:
            self.set_factors(combined_factors(self.dynamics, self.robot, task))

    def set_factors(self, factors: Factors) -> None:
        """Set model fields to default * factor, per simulation (factors [N, *shape]).

        set_tasks goes through here with factors of tasks the family has checked; called
        directly, nothing checks the factors against any declared space, which is how a
        stress test reaches dynamics beyond it. Reset the simulations after.
        """
        for name, factor in factors.items():
            self.batch.expand(name)[:] = model_field(self.robot.model, name) * factor
        self.batch.set_const()

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int32)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        for i, rng in zip(ids, rngs, strict=True):
            self._state.qpos[i], self._state.qvel[i] = self.robot.reset_state(rng)
            self._rngs[i] = rng
        with quiet_mujoco():
            self.batch.forward(ids)
        return observe(self.observation, self.robot.observe(self._state)[ids],
                       {name: values[ids] for name, values in self._task.items()}, rngs)

    def step(self, action_NA: np.ndarray, active_N: np.ndarray) -> SimStep:
        action_NA = self.robot.clip_action(action_NA)
        xy_before = self.robot.xy_position(self._state).copy()
        counts_before = instability_counts(self.batch.warning[..., 1])
        self._ctrl[:] = action_NA
        ids = None if active_N.all() else np.flatnonzero(active_N).astype(np.int32)
        with quiet_mujoco():
            self.batch.step(ids, nstep=self.robot.frame_skip)
        unstable = (instability_counts(self.batch.warning[..., 1]) > counts_before).any(axis=1)
        out = outcome(robot=self.robot, reward_part=self.reward, task=self._task,
                      state=self._state, xy_before=xy_before, action=action_NA,
                      unstable=unstable)
        obs = out.obs
        if self.observation:  # no per-simulation work for a family without them
            rngs = [rng if active else None for rng, active in zip(self._rngs, active_N,
                                                                      strict=True)]
            obs = observe(self.observation, obs, self._task, rngs)
        return SimStep(obs_NO=obs, reward_N=out.reward, terms=out.terms,
                       terminated_N=out.terminated, diverged_N=out.diverged)
