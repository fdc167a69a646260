"""One env-step's outcome from the physics state, shared by the batched and reference envs.

The two envs differ only in how they run MuJoCo (mujoco.batch versus one MjData). Once
the physics has stepped, both call `outcome` here, so observation, reward terms,
termination and divergence are computed by one piece of code for N simulations or one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mujoco
import numpy as np

from tasks.locomotion.rewards import Step
from tasks.locomotion.robots import PhysicsState, Robot, finite_state

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
    """Score one step. `unstable` [N] says MuJoCo raised an instability warning."""
    diverged = unstable | ~finite_state(state)
    velocity = (robot.xy_position(state) - xy_before) / robot.dt
    terms = robot.terms(state, action)
    terms.update(reward_part.terms(Step(robot, state, velocity, action), task))
    total = np.sum(list(terms.values()), axis=0)
    obs = robot.observe(state)
    if diverged.any():
        # MuJoCo resets an unstable simulation, so its state is finite; the step that
        # diverged earns nothing and its numbers are not trusted.
        total = np.where(diverged, 0.0, total)
        terms = {k: np.where(diverged, 0.0, v) for k, v in terms.items()}
        obs = np.where(diverged[:, None], np.nan_to_num(obs, posinf=0.0, neginf=0.0), obs)
    return Outcome(obs=obs, reward=total, terms=terms,
                   terminated=robot.terminates(state) | diverged, diverged=diverged)


def instability_counts(counts: np.ndarray) -> np.ndarray:
    """Instability warning counts [N, 3] from MuJoCo's warning counts [N, nwarning]."""
    return counts[:, INSTABILITY_WARNINGS].copy()

