"""Observation parts: how a task changes what the robot's observation shows, and nothing
else. The physics and the reward are those of the task without the part, so a policy
that generalizes across these tasks has learned to ignore what varies (the invariance to
observations of a robot arm painted another colour).

A part declares its task parameters and splits like a reward or dynamics part, and maps
the robot's observations [N, O] and the tasks' arrays [N] to the observations the agent
gets, [N, O + extra_size]. Parts apply in order, so they compose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.regions import Param, Region, box, shell


def check_range(name: str, inner: tuple[float, float], outer: tuple[float, float]) -> None:
    """inner within outer, each (low, high) with low < high: else a ValueError naming it."""
    for label, (low, high) in (("train_range", inner), ("ood_range", outer)):
        if not low < high:
            raise ValueError(f"{name}: {label} must be (low, high) with low < high, got "
                             f"({low}, {high})")
    if not (outer[0] <= inner[0] and inner[1] <= outer[1]):
        raise ValueError(f"{name}: train_range {inner} must lie within ood_range {outer}")


@dataclass(frozen=True)
class Distractors:
    """`count` constant features per task appended to every observation (a colour): they
    tell tasks apart but say nothing about the physics or the reward.

    Train: every feature in [train_range); test-ood: every feature in [ood_range) and at
    least one outside train_range, values no training task shows.
    """

    count: int = 4
    train_range: tuple[float, float] = (-0.5, 0.5)
    ood_range: tuple[float, float] = (-2.0, 2.0)

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"Distractors: count must be an integer >= 1, got "
                             f"{self.count!r}")
        check_range("Distractors", self.train_range, self.ood_range)

    @property
    def names(self) -> list[str]:
        return [f"distractor_{i}" for i in range(self.count)]

    @property
    def params(self) -> tuple[Param, ...]:
        low, high = self.ood_range
        return tuple(Param(name, low, high, doc="a constant feature of the observation "
                                                "that changes neither physics nor reward")
                     for name in self.names)

    @property
    def splits(self) -> dict[str, Region]:
        inner = dict.fromkeys(self.names, self.train_range)
        return {"train": box(**inner),
                "test-ood": shell(dict.fromkeys(self.names, self.ood_range), inner)}

    @property
    def extra_size(self) -> int:
        return self.count

    def check_fits(self, obs_size: int) -> None:
        """Appended features fit any observation."""

    def apply(self, obs_NO: np.ndarray, task: Mapping[str, np.ndarray]) -> np.ndarray:
        features_NK = np.stack([np.asarray(task[name], dtype=np.float64)
                                for name in self.names], axis=1)
        return np.concatenate([obs_NO, features_NK.reshape(len(obs_NO), -1)], axis=1)


@dataclass(frozen=True)
class ChannelGain:
    """A per-task fixed transform of some observation channels: the robot's channels
    `channels` (indices into its observation) multiplied by the task's `observation_gain`,
    as a sensor calibrated differently would report them.

    Train: gain in [train_range); test-ood: in [ood_range) outside it (log scale).
    """

    channels: tuple[int, ...] = (0, 1)
    train_range: tuple[float, float] = (0.8, 1.25)
    ood_range: tuple[float, float] = (0.5, 2.0)

    def __post_init__(self) -> None:
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                                    for c in self.channels):
            raise ValueError(f"ChannelGain: channels must be non-empty indices >= 0, got "
                             f"{self.channels!r}")
        check_range("ChannelGain", self.train_range, self.ood_range)
        if self.ood_range[0] <= 0:
            raise ValueError(f"ChannelGain: gains are positive; ood_range {self.ood_range}")

    @property
    def params(self) -> tuple[Param, ...]:
        low, high = self.ood_range
        return (Param("observation_gain", low, high, scale="log",
                      doc=f"factor on observation channels {list(self.channels)}"),)

    @property
    def splits(self) -> dict[str, Region]:
        inner = {"observation_gain": self.train_range}
        return {"train": box(**inner),
                "test-ood": shell({"observation_gain": self.ood_range}, inner)}

    @property
    def extra_size(self) -> int:
        return 0

    def check_fits(self, obs_size: int) -> None:
        if max(self.channels) >= obs_size:
            raise ValueError(f"ChannelGain: channels {list(self.channels)} do not fit an "
                             f"observation of {obs_size} numbers")

    def apply(self, obs_NO: np.ndarray, task: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.array(obs_NO, dtype=np.float64)
        gain_N = np.asarray(task["observation_gain"], dtype=np.float64)
        out[:, list(self.channels)] *= gain_N.reshape(-1, 1)
        return out


def observe(parts: Sequence[Distractors | ChannelGain], obs_NO: np.ndarray,
            task: Mapping[str, np.ndarray]) -> np.ndarray:
    """The robot's observations [N, O] through every part, in order."""
    for part in parts:
        obs_NO = part.apply(obs_NO, task)
    return obs_NO


def observation_size(parts: Sequence[Distractors | ChannelGain], robot_size: int) -> int:
    """The size of the observations the parts make of the robot's `robot_size` numbers,
    once each part is checked to fit the observation it receives (a ValueError naming
    the part when not)."""
    size = robot_size
    for part in parts:
        part.check_fits(size)
        size += part.extra_size
    return size
