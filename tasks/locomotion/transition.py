"""One env-step's outcome from the physics state, shared by the batched and reference envs.

The two envs differ only in how they run MuJoCo (mujoco.batch versus one MjData). Once
the physics has stepped, both call `outcome` here, so observation, reward terms,
termination and divergence are computed by one piece of code for N simulations or one.

Divergence has two detectors. MuJoCo checks its state at the start of every substep
and resets a simulation whose positions, velocities or accelerations are NaN or beyond
1e10 (its instability warnings). A state that blows up in a step's last substep is seen
only at the next step, or never if the episode ends first (an ant that falls as it
explodes), and a cheetah spinning at 1e7 rad/s is below MuJoCo's threshold. So each
robot also declares physical `Bounds`, and a step that ends outside them has diverged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mujoco
import numpy as np

from tasks.locomotion.rewards import Step
from tasks.locomotion.robots import PhysicsState, Robot

# MuJoCo's counters for a state it found unstable (it then resets that simulation)
INSTABILITY_WARNINGS = np.array([int(mujoco.mjtWarning.mjWARN_BADQPOS),
                                 int(mujoco.mjtWarning.mjWARN_BADQVEL),
                                 int(mujoco.mjtWarning.mjWARN_BADQACC)])


@dataclass
class Outcome:
    obs: np.ndarray           # [N, O]
    reward: np.ndarray        # [N]
    terms: dict[str, np.ndarray]  # name -> [N]; they sum to reward
    terminated: np.ndarray    # [N] bool, includes diverged
    diverged: np.ndarray      # [N] bool


def outcome(*, robot: Robot, reward_part, task: Mapping[str, np.ndarray],
            state: PhysicsState, xy_before: np.ndarray, action: np.ndarray,
            unstable: np.ndarray) -> Outcome:
    """Score one step of N simulations.

    `action` [N, A] is the action the physics ran (already clipped to the box, see
    `Robot.clip_action`); `unstable` [N] says MuJoCo raised an instability warning.

    A step diverged if MuJoCo found it unstable, if its state, measured velocity or
    observation leaves the robot's `Bounds` (NaN and inf do), or if its reward is not
    finite. A diverged step
    terminates, earns 0 (every reward term 0), and its observation is clipped to the
    observation bound (NaN becomes 0), so no huge or non-finite number leaves the env.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        # A diverged simulation's numbers may overflow here; they are replaced below.
        velocity = (robot.xy_position(state) - xy_before) / robot.dt
        terms = robot.terms(state, action)
        terms.update(reward_part.terms(Step(robot, state, velocity, action), task))
        total = np.sum(list(terms.values()), axis=0)
        obs = robot.observe(state)
    diverged = unstable | ~robot.within_bounds(state, velocity, obs) | ~np.isfinite(total)
    if diverged.any():
        bound = robot.bounds.observation
        total = np.where(diverged, 0.0, total)
        terms = {k: np.where(diverged, 0.0, v) for k, v in terms.items()}
        safe_obs = np.clip(np.nan_to_num(obs, nan=0.0), -bound, bound)
        obs = np.where(diverged[:, None], safe_obs, obs)
    return Outcome(obs=obs, reward=total, terms=terms,
                   terminated=robot.terminates(state) | diverged, diverged=diverged)


def instability_counts(counts: np.ndarray) -> np.ndarray:
    """Instability warning counts [N, 3] from MuJoCo's warning counts [N, nwarning]."""
    return counts[:, INSTABILITY_WARNINGS].copy()

