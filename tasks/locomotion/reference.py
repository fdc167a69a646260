"""LocomotionEnv: one task simulated by gymnasium's MujocoEnv on one MjData.

It is the plain gymnasium env of a locomotion family (`gymnasium.make("fewshot/...")`)
and the reference the batched env is tested against: physics, reset noise and seeding
go through gymnasium's own machinery, not through mujoco.batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from tasks.family import check_seed
from tasks.locomotion.dynamics import combined_factors, model_field
from tasks.locomotion.observations import observation_size, observe
from tasks.locomotion.robots import PhysicsState, Robot, quiet_mujoco
from tasks.locomotion.transition import instability_counts, outcome
from tasks.vector import SingleEnvGuard


class LocomotionEnv(SingleEnvGuard, MujocoEnv):
    """One simulation of a locomotion family's task.

    The task is set at construction, by `set_task(task)`, or by
    `reset(options={"task": task})`; a new task takes effect at that reset, and step()
    refuses to run before it. Actions outside the action box are clipped to it (see
    `tasks/locomotion/robots.py`); NaN or inf actions are refused.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}

    def __init__(self, *, family: Any, robot: Robot, reward, dynamics: Sequence, task: Any,
                 observation: Sequence = (), render_mode: str | None = None,
                 **kwargs: Any) -> None:
        self.family = family
        self.robot = robot
        self.reward_part = reward
        self.dynamics = tuple(dynamics)
        self.observation = tuple(observation)
        MujocoEnv.__init__(self, robot.xml_file, robot.frame_skip, observation_space=None,
                           render_mode=render_mode, **kwargs)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self._defaults = {name: model_field(self.model, name).copy()
                          for name in ("body_mass", "body_inertia", "geom_friction",
                                       "dof_damping", "opt.gravity", "actuator_gear")}
        obs_size = observation_size(self.observation,
                                    robot.observe(self._physics_state()).shape[1])
        self.observation_space = spaces.Box(-np.inf, np.inf, (obs_size,), np.float64)
        self.set_task(task)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = copy.copy(self.robot.model)  # this env edits its own copy per task
        return model, mujoco.MjData(model)

    @property
    def task(self) -> Any:
        return self._task

    def set_task(self, task: Any) -> None:
        """Use `task` from the next reset on."""
        self._refuse_if_closed()
        self.family.check_task(task)
        self._task = task
        self._task_arrays = self.family.task_arrays([task])
        for name, default in self._defaults.items():
            model_field(self.model, name)[:] = default
        for name, factor in combined_factors(self.dynamics, self.robot,
                                             self._task_arrays).items():
            model_field(self.model, name)[:] = self._defaults[name] * factor[0]
        mujoco.mj_setConst(self.model, self.data)
        self._needs_reset = True

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        # As MujocoEnv's, without its mj_rnePostConstraint after the step: cfrc_ext stays
        # what the probe sensor had MuJoCo compute in the last substep (see robots.py).
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._refuse_if_closed()
        check_seed(seed)
        options = dict(options or {})
        if "task" in options:
            self.set_task(options.pop("task"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; allowed: 'task'")
        with quiet_mujoco():
            first = super().reset(seed=seed)
        self._needs_reset = False
        return first

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.robot.reset_state(self.np_random)
        self.set_state(qpos, qvel)
        return observe(self.observation, self.robot.observe(self._physics_state()),
                       self._task_arrays, [self.np_random])[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.check_ready()
        action = np.asarray(action)
        if action.dtype.kind != "f" or action.shape != self.action_space.shape:
            raise ValueError(f"action must be a float array of shape "
                             f"{self.action_space.shape}, got {action.dtype} {action.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf (it must be finite): "
                             f"{action.tolist()}")
        action_1A = self.robot.clip_action(action[None].astype(np.float64))
        xy_before = self.robot.xy_position(self._physics_state()).copy()
        counts_before = instability_counts(self.data.warning.number[None])
        with quiet_mujoco():
            self.do_simulation(action_1A[0], self.frame_skip)
        unstable = (instability_counts(self.data.warning.number[None]) > counts_before).any(1)
        out = outcome(robot=self.robot, reward_part=self.reward_part, task=self._task_arrays,
                      state=self._physics_state(), xy_before=xy_before, action=action_1A,
                      unstable=unstable)
        info = {"diverged": bool(out.diverged[0]),
                **{f"reward_{k}": float(v[0]) for k, v in out.terms.items()}}
        obs = observe(self.observation, out.obs, self._task_arrays, [self.np_random])
        return obs[0], float(out.reward[0]), bool(out.terminated[0]), False, info

    def _physics_state(self) -> PhysicsState:
        d = self.data
        return PhysicsState(qpos=d.qpos[None], qvel=d.qvel[None], cfrc_ext=d.cfrc_ext[None])
