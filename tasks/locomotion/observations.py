"""Observation parts: how a task changes what the robot's observation shows, and nothing
else. The physics and the reward are those of the task without the part, so a policy
that generalizes across these tasks has learned to ignore what varies (the invariance to
observations of a robot arm painted another colour).

A part declares its task parameters and splits like a reward or dynamics part, and maps
the robot's observations [N, O] and the tasks' arrays [N] to the observations the agent
gets, [N, O + extra_size]. Parts apply in order, so they compose. A part that draws noise
draws it from each simulation's own generator (`rngs`, one per row; None for a row that
did not step), so a batched env and the reference env of the same seed see the same noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.regions import Interval, Param, Region, box, shell

Rngs = Sequence[np.random.Generator | None]


def check_range(name: str, inner: tuple[float, float], outer: tuple[float, float]) -> None:
    """inner within outer, each (low, high) with low < high: else a ValueError naming it."""
    for label, (low, high) in (("train_range", inner), ("ood_range", outer)):
        if not low < high:
            raise ValueError(f"{name}: {label} must be (low, high) with low < high, got "
                             f"({low}, {high})")
    if not (outer[0] <= inner[0] and inner[1] <= outer[1]):
        raise ValueError(f"{name}: train_range {inner} must lie within ood_range {outer}")


def range_splits(names: Sequence[str], train_range: tuple[float, float],
                 ood_range: tuple[float, float]) -> dict[str, Region]:
    """Train: every parameter in [train_range); test-ood: every one in [ood_range), at
    least one outside train_range."""
    inner = dict.fromkeys(names, train_range)
    return {"train": box(**inner), "test-ood": shell(dict.fromkeys(names, ood_range), inner)}


@dataclass(frozen=True)
class Distractors:
    """`count` constant features per task appended to every observation (a colour): they
    tell tasks apart but say nothing about the physics or the reward.

    Train: every feature in [train_range), or, with `colours` = K > 0, only K fixed
    colours drawn from that box (by `colour_seed`): a small set of training "paint jobs",
    with test-id the colours of the box never trained on. Test-ood: every feature in
    [ood_range) and at least one outside train_range, values no training task shows.
    Training on the whole range with a fresh task per episode is domain randomization.
    """

    count: int = 4
    train_range: tuple[float, float] = (-0.5, 0.5)
    ood_range: tuple[float, float] = (-2.0, 2.0)
    colours: int = 0
    colour_seed: int = 0

    def __post_init__(self) -> None:
        for name, least in (("count", 1), ("colours", 0), ("colour_seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"Distractors: {name} must be an integer >= {least}, got "
                                 f"{value!r}")
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
        splits = range_splits(self.names, self.train_range, self.ood_range)
        if self.colours:
            splits["test-id"] = splits["train"]
            splits["train"] = Region(tuple({name: Interval(float(v), float(v)) for name, v in
                                            zip(self.names, colour, strict=True)}
                                           for colour in self.colour_values()))
        return splits

    def colour_values(self) -> np.ndarray:
        """The K training colours [K, count], each feature uniform in [train_range)."""
        low, high = self.train_range
        rng = np.random.default_rng(self.colour_seed)
        return rng.uniform(low, high, (self.colours, self.count))

    @property
    def extra_size(self) -> int:
        return self.count

    def check_fits(self, obs_size: int) -> None:
        """Appended features fit any observation."""

    def apply(self, obs_NO: np.ndarray, task: Mapping[str, np.ndarray],
              rngs: Rngs) -> np.ndarray:
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
        return range_splits(["observation_gain"], self.train_range, self.ood_range)

    @property
    def extra_size(self) -> int:
        return 0

    def check_fits(self, obs_size: int) -> None:
        if max(self.channels) >= obs_size:
            raise ValueError(f"ChannelGain: channels {list(self.channels)} do not fit an "
                             f"observation of {obs_size} numbers")

    def apply(self, obs_NO: np.ndarray, task: Mapping[str, np.ndarray],
              rngs: Rngs) -> np.ndarray:
        out = np.array(obs_NO, dtype=np.float64)
        gain_N = np.asarray(task["observation_gain"], dtype=np.float64)
        out[:, list(self.channels)] *= gain_N.reshape(-1, 1)
        return out


@dataclass(frozen=True)
class ObservationNoise:
    """Per-task sensor noise: Gaussian noise of the task's standard deviation
    `observation_noise` added to every number of the observation at every step (and at
    reset), drawn afresh each time from the simulation's own generator.

    Train: std in [train_range); test-ood: in [ood_range) beyond it (noisier sensors).
    """

    train_range: tuple[float, float] = (0.0, 0.05)
    ood_range: tuple[float, float] = (0.0, 0.2)

    def __post_init__(self) -> None:
        check_range("ObservationNoise", self.train_range, self.ood_range)
        if self.ood_range[0] < 0:
            raise ValueError(f"ObservationNoise: a standard deviation is >= 0; ood_range "
                             f"{self.ood_range}")

    @property
    def params(self) -> tuple[Param, ...]:
        low, high = self.ood_range
        return (Param("observation_noise", low, high,
                      doc="std of the Gaussian noise on every observation number"),)

    @property
    def splits(self) -> dict[str, Region]:
        return range_splits(["observation_noise"], self.train_range, self.ood_range)

    @property
    def extra_size(self) -> int:
        return 0

    def check_fits(self, obs_size: int) -> None:
        """Noise fits any observation."""

    def apply(self, obs_NO: np.ndarray, task: Mapping[str, np.ndarray],
              rngs: Rngs) -> np.ndarray:
        out = np.array(obs_NO, dtype=np.float64)
        std_N = np.asarray(task["observation_noise"], dtype=np.float64)
        for n, rng in enumerate(rngs):
            if rng is not None:
                out[n] += std_N[n] * rng.standard_normal(out.shape[1])
        return out


Part = Distractors | ChannelGain | ObservationNoise


def observe(parts: Sequence[Part], obs_NO: np.ndarray, task: Mapping[str, np.ndarray],
            rngs: Rngs) -> np.ndarray:
    """The robot's observations [N, O] through every part, in order; rngs[n] is row n's
    generator (None: the row did not step and draws no noise)."""
    if len(rngs) != len(obs_NO):
        raise ValueError(f"observe: {len(rngs)} generators for {len(obs_NO)} observations")
    for part in parts:
        obs_NO = part.apply(obs_NO, task, rngs)
    return obs_NO


def observation_size(parts: Sequence[Part], robot_size: int) -> int:
    """The size of the observations the parts make of the robot's `robot_size` numbers,
    once each part is checked to fit the observation it receives (a ValueError naming
    the part when not)."""
    size = robot_size
    for part in parts:
        part.check_fits(size)
        size += part.extra_size
    return size
