"""Reward parts: the task-varying objective of a locomotion family.

A reward part declares its task parameters and splits, and turns one env-step of N
simulations into named reward terms, each an array [N]; the reward is the sum of the
robot's terms and the part's terms. Task parameters arrive as arrays [N] (tasks as data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tasks.locomotion.robots import PhysicsState, Robot
from tasks.regions import Param, Region, box, choice

Terms = dict[str, np.ndarray]


@dataclass
class Step:
    """What a reward part may read about one env-step of N simulations."""

    robot: Robot
    state: PhysicsState       # after the step
    xy_velocity: np.ndarray   # [N, 2] m/s, displacement of the robot's reference point / dt
    action: np.ndarray        # [N, A]


@dataclass(frozen=True)
class Forward:
    """Run forward, along +x: v_x. The same for every task (no parameters)."""

    @property
    def params(self) -> tuple[Param, ...]:
        return ()

    @property
    def splits(self) -> dict[str, Region]:
        return {}

    def terms(self, step: Step, task: Mapping[str, np.ndarray]) -> Terms:
        return {"forward": step.xy_velocity[:, 0]}


@dataclass(frozen=True)
class TargetVelocity:
    """Run forward at a target speed: -|v_x - goal_velocity| (m/s)."""

    train: tuple[float, float] = (0.0, 2.0)
    ood: tuple[float, float] | None = (2.0, 3.0)
    low: float = 0.0
    high: float = 3.0

    @property
    def params(self) -> tuple[Param, ...]:
        return (Param("goal_velocity", self.low, self.high, doc="target forward speed, m/s"),)

    @property
    def splits(self) -> dict[str, Region]:
        splits = {"train": box(goal_velocity=self.train)}
        if self.ood is not None:
            splits["test-ood"] = box(goal_velocity=self.ood)
        return splits

    def terms(self, step: Step, task: Mapping[str, np.ndarray]) -> Terms:
        return {"velocity": -np.abs(step.xy_velocity[:, 0] - task["goal_velocity"])}


@dataclass(frozen=True)
class Direction:
    """Run forward (direction = +1) or backward (-1): direction * v_x. No OOD split."""

    @property
    def params(self) -> tuple[Param, ...]:
        return (Param("direction", values=(-1, 1), labels=("backward", "forward")),)

    @property
    def splits(self) -> dict[str, Region]:
        return {"train": choice("direction", (1, -1))}

    def terms(self, step: Step, task: Mapping[str, np.ndarray]) -> Terms:
        return {"forward": task["direction"] * step.xy_velocity[:, 0]}


@dataclass(frozen=True)
class PlanarDirection:
    """Run in the plane along angle theta (radians from +x): v . (cos theta, sin theta).

    Training directions cover [0, 3pi/2); the last quadrant [3pi/2, 2pi) is held out.
    """

    train: tuple[float, float] = (0.0, 1.5 * math.pi)
    ood: tuple[float, float] | None = (1.5 * math.pi, 2.0 * math.pi)

    @property
    def params(self) -> tuple[Param, ...]:
        return (Param("theta", 0.0, 2.0 * math.pi, doc="running direction, radians"),)

    @property
    def splits(self) -> dict[str, Region]:
        splits = {"train": box(theta=self.train)}
        if self.ood is not None:
            splits["test-ood"] = box(theta=self.ood)
        return splits

    def terms(self, step: Step, task: Mapping[str, np.ndarray]) -> Terms:
        theta = task["theta"]
        v = step.xy_velocity
        return {"forward": v[:, 0] * np.cos(theta) + v[:, 1] * np.sin(theta)}


# Gait features: each an array [N] computed from the step.
GAIT_FEATURES = ("forward", "air", "back_contact", "front_contact", "height")


def _gait_features(step: Step) -> dict[str, np.ndarray]:
    force = step.robot.contact_force(step.state)  # [N, nbody]
    touching = force > 1e-8

    def any_touch(group: str) -> np.ndarray:
        return touching[:, step.robot.body_ids(group)].any(axis=1).astype(np.float64)

    height = step.robot.torso_height(step.state)
    return {
        "forward": step.xy_velocity[:, 0],
        # height gained in flight: no body touches anything and the torso is above its
        # starting height. Contact alone flickers under soft contacts (a random policy
        # is contact-free in half its steps), so flight must also lift the torso.
        "air": (1.0 - any_touch("all")) * np.maximum(height, 0.0),
        "back_contact": any_touch("back"),
        "front_contact": any_touch("front"),
        "height": height,
    }


@dataclass(frozen=True)
class Gait:
    """Run forward with a given gait: a weighted sum of gait features.

    Every gait rewards forward speed; they differ in what else they ask for:
    run (speed only), back-leg (a penalty whenever the front leg touches the ground),
    front-leg (likewise for the back leg), high-torso (keep the torso high), and hop
    (flight phases: a bonus for the torso's height while no body touches the ground, at
    half the speed weight). hop is held out as the OOD gait.

    `only` = a gait's name trains on that gait alone (a specialist's tasks, the reference a
    gait's scores are normalised by); there is then no test-ood split.
    """

    names: tuple[str, ...] = ("run", "back-leg", "front-leg", "high-torso", "hop")
    weights: tuple[tuple[float, ...], ...] = field(default=(
        # forward, air, back_contact, front_contact, height
        (1.0, 0.0, 0.0, 0.0, 0.0),     # run
        (1.0, 0.0, 0.0, -1.0, 0.0),    # back-leg
        (1.0, 0.0, -1.0, 0.0, 0.0),    # front-leg
        (1.0, 0.0, 0.0, 0.0, 10.0),    # high-torso
        (0.5, 10.0, 0.0, 0.0, 0.0),    # hop
    ))
    ood: tuple[str, ...] = ("hop",)
    only: str = ""

    def __post_init__(self) -> None:
        if self.only and self.only not in self.names:
            raise ValueError(f"Gait: only must be one of {list(self.names)} (or empty), got "
                             f"{self.only!r}")
        if len(self.weights) != len(self.names) or any(
                len(w) != len(GAIT_FEATURES) for w in self.weights):
            raise ValueError(f"Gait: need one weight row of {len(GAIT_FEATURES)} "
                             f"({', '.join(GAIT_FEATURES)}) per gait name")
        unknown = set(self.ood) - set(self.names)
        if unknown:
            raise ValueError(f"Gait: OOD gaits {sorted(unknown)} are not among {self.names}")

    @property
    def params(self) -> tuple[Param, ...]:
        return (Param("gait", values=tuple(range(len(self.names))), labels=self.names),)

    @property
    def splits(self) -> dict[str, Region]:
        if self.only:
            return {"train": choice("gait", [self.names.index(self.only)])}
        ood = [i for i, n in enumerate(self.names) if n in self.ood]
        train = [i for i, n in enumerate(self.names) if n not in self.ood]
        splits = {"train": choice("gait", train)}
        if ood:
            splits["test-ood"] = choice("gait", ood)
        return splits

    def terms(self, step: Step, task: Mapping[str, np.ndarray]) -> Terms:
        features = _gait_features(step)
        w = np.asarray(self.weights)[task["gait"].astype(int)]  # [N, F]
        return {name: w[:, f] * features[name] for f, name in enumerate(GAIT_FEATURES)}
