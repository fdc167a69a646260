"""Dynamics parts: how a task changes the robot's physics.

A dynamics part declares its task parameters and splits, and turns task arrays [N] into
multiplicative factors on MuJoCo model fields, each [N, *field_shape]. Factors from
several parts multiply, so parts compose (a heavier ant with a crippled leg). The
batched env writes default * factor into per-simulation model fields; the reference
env writes the same numbers into its single model. Both then run mj_setConst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from tasks.locomotion.robots import Robot
from tasks.regions import Param, Region, box, choice, shell

Factors = dict[str, np.ndarray]

# factor name -> the model fields it scales
SCALED_FIELDS = {
    "mass": ("body_mass", "body_inertia"),
    "friction": ("geom_friction",),
    "damping": ("dof_damping",),
    "gravity": ("opt.gravity",),
    "gear": ("actuator_gear",),
}


def model_field(model: mujoco.MjModel, name: str) -> np.ndarray:
    """The live array of a model field; "opt.x" names an MjOption field."""
    if name.startswith("opt."):
        return getattr(model.opt, name[4:])
    return getattr(model, name)


@dataclass(frozen=True)
class Scaling:
    """Log-uniform scale factors on mass (and inertia), friction, damping, gravity, gear.

    ID: every factor in [id_range); OOD: every factor in [ood_range) and at least one
    outside the ID range, on either side.
    """

    factors: tuple[str, ...] = tuple(SCALED_FIELDS)
    id_range: tuple[float, float] = (0.5, 2.0)
    ood_range: tuple[float, float] = (0.25, 4.0)

    def __post_init__(self) -> None:
        unknown = set(self.factors) - set(SCALED_FIELDS)
        if unknown or not self.factors:
            raise ValueError(f"Scaling: factors must be a non-empty subset of "
                             f"{list(SCALED_FIELDS)}, got {list(self.factors)}")

    @property
    def params(self) -> tuple[Param, ...]:
        low, high = self.ood_range
        return tuple(Param(f"{f}_scale", low, high, scale="log",
                           doc=f"factor on {', '.join(SCALED_FIELDS[f])}")
                     for f in self.factors)

    @property
    def splits(self) -> dict[str, Region]:
        names = [f"{f}_scale" for f in self.factors]
        inner = dict.fromkeys(names, self.id_range)
        return {"train": box(**inner),
                "test-ood": shell(dict.fromkeys(names, self.ood_range), inner)}

    def factors_for(self, robot: Robot, task: Mapping[str, np.ndarray]) -> Factors:
        out: Factors = {}
        for f in self.factors:
            scale = task[f"{f}_scale"]
            for name in SCALED_FIELDS[f]:
                shape = model_field(robot.model, name).shape
                out[name] = np.broadcast_to(
                    scale.reshape(-1, *([1] * len(shape))), (len(scale), *shape))
        return out


@dataclass(frozen=True)
class CrippledLeg:
    """One leg's actuators disabled (gear 0). ID: legs `train`; OOD: legs `ood`."""

    train: tuple[int, ...] = (0, 1, 2)
    ood: tuple[int, ...] = (3,)
    labels: tuple[str, ...] = ("front_left_leg", "front_right_leg", "back_leg",
                               "right_back_leg")

    @property
    def params(self) -> tuple[Param, ...]:
        legs = tuple(sorted(self.train + self.ood))
        return (Param("crippled_leg", values=legs,
                      labels=tuple(self.labels[i] for i in legs)),)

    @property
    def splits(self) -> dict[str, Region]:
        splits = {"train": choice("crippled_leg", self.train)}
        if self.ood:
            splits["test-ood"] = choice("crippled_leg", self.ood)
        return splits

    def factors_for(self, robot: Robot, task: Mapping[str, np.ndarray]) -> Factors:
        legs = task["crippled_leg"].astype(int)
        gear = np.ones((len(legs), *robot.model.actuator_gear.shape))
        for i, leg in enumerate(legs):
            gear[i, robot.leg_actuators(int(leg))] = 0.0
        return {"actuator_gear": gear}


def combined_factors(parts: Sequence[Scaling | CrippledLeg], robot: Robot,
                     task: Mapping[str, np.ndarray]) -> Factors:
    """The product of every part's factors, per model field."""
    out: Factors = {}
    for part in parts:
        for name, factor in part.factors_for(robot, task).items():
            out[name] = out[name] * factor if name in out else np.array(factor)
    return out
