"""Task parameter spaces and split regions: the first step of the data flow.

A family's parameters are declared as `Param`s. A split (train, test-id, test-ood) is a
`Region`: a union of disjoint boxes, each box a product of one `Interval` per parameter.
That one shape covers every split this package needs:

- a range of target velocities is one box;
- a discrete choice (a gait, a crippled leg, a direction) is a union of point boxes;
- "outside the training square but inside [-1, 1]^2" is a `shell`, the outer box minus
  the inner one, cut into disjoint slabs;
- a composite family's split is a product of its parts' regions.

Regions are sampled uniformly (by volume, measured in each parameter's sampling scale,
with points counting one each) and can be tested for overlap exactly, so a family whose
OOD region touches its training region fails to build.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SCALES = ("linear", "log")


@dataclass(frozen=True)
class Param:
    """One task parameter: its name, its declared space and how it is sampled.

    Continuous parameters take any value in [low, high]. Discrete parameters take one of
    `values` (integers), optionally named by `labels` for tables and plots.
    """

    name: str
    low: float = 0.0
    high: float = 0.0
    scale: str = "linear"
    values: tuple[int, ...] | None = None
    labels: tuple[str, ...] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"Param {self.name!r}: scale must be one of {SCALES}, "
                             f"got {self.scale!r}")
        if self.values is not None:
            if self.labels is not None and len(self.labels) != len(self.values):
                raise ValueError(f"Param {self.name!r}: {len(self.labels)} labels for "
                                 f"{len(self.values)} values")
            return
        if not self.low < self.high:
            raise ValueError(f"Param {self.name!r}: need low < high, got [{self.low}, "
                             f"{self.high}]")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"Param {self.name!r}: a log-scale parameter needs low > 0")

    @property
    def is_discrete(self) -> bool:
        return self.values is not None

    def describe(self) -> str:
        """The declared space in words, for error messages."""
        if self.values is not None:
            if self.labels:
                return "one of " + ", ".join(f"{v} ({lab})"
                                             for v, lab in zip(self.values, self.labels,
                                                               strict=True))
            return f"one of {list(self.values)}"
        return f"in [{self.low}, {self.high}]"

    def check(self, value: object) -> int | float:
        """Return `value` as this parameter's number type, or raise ValueError."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise ValueError(f"task parameter {self.name!r} must be a number "
                             f"{self.describe()}, got {value!r}")
        if self.values is not None:
            if value not in self.values:
                raise ValueError(f"task parameter {self.name!r} must be "
                                 f"{self.describe()}, got {value!r}")
            return int(value)
        value = float(value)
        if not (self.low <= value <= self.high):
            raise ValueError(f"task parameter {self.name!r} must be {self.describe()}, "
                             f"got {value!r}")
        return value

    def label(self, value: int | float) -> str:
        """A short human-readable form of one value of this parameter."""
        if self.values is not None and self.labels is not None:
            return self.labels[self.values.index(int(value))]
        return f"{value:.3g}"

    # Regions are sampled uniformly in `to_sampling(x)`: x itself, or log x.
    def to_sampling(self, x: float) -> float:
        return math.log(x) if self.scale == "log" else float(x)

    def from_sampling(self, u: np.ndarray) -> np.ndarray:
        return np.exp(u) if self.scale == "log" else u


@dataclass(frozen=True)
class Interval:
    """[lo, hi) for lo < hi; the single point {lo} for lo == hi."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ValueError(f"Interval needs lo <= hi, got [{self.lo}, {self.hi})")

    @property
    def is_point(self) -> bool:
        return self.lo == self.hi

    def contains(self, x: float) -> bool:
        return x == self.lo if self.is_point else self.lo <= x < self.hi

    def intersects(self, other: Interval) -> bool:
        if self.is_point:
            return other.contains(self.lo)
        if other.is_point:
            return self.contains(other.lo)
        return max(self.lo, other.lo) < min(self.hi, other.hi)


Box = Mapping[str, Interval]


@dataclass(frozen=True)
class Region:
    """A union of disjoint boxes over the same parameter names."""

    boxes: tuple[Box, ...]

    def __post_init__(self) -> None:
        if not self.boxes:
            raise ValueError("a Region needs at least one box")
        names = set(self.boxes[0])
        for box in self.boxes[1:]:
            if set(box) != names:
                raise ValueError(f"boxes of one Region must name the same parameters, got "
                                 f"{sorted(names)} and {sorted(box)}")
        for a, b in itertools.combinations(self.boxes, 2):
            if _boxes_intersect(a, b):
                raise ValueError("the boxes of a Region must be disjoint")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.boxes[0])

    def contains(self, values: Mapping[str, float]) -> bool:
        return any(all(box[n].contains(values[n]) for n in box) for box in self.boxes)

    def intersects(self, other: Region) -> bool:
        if set(self.names) != set(other.names):
            raise ValueError(f"cannot compare regions over {sorted(self.names)} and "
                             f"{sorted(other.names)}")
        return any(_boxes_intersect(a, b) for a in self.boxes for b in other.boxes)

    def sample(self, n: int, params: Mapping[str, Param], rng: np.random.Generator, *,
               stratify_by: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Draw n points uniformly from the region; returns one array [n] per parameter.

        stratify_by (discrete parameters, a point in every box): the region's strata are
        its distinct values of these; stratum s gets floor(n p_s) points (p_s its share of
        the volume) and the remainder goes to distinct strata drawn by p, in shuffled
        order. Still uniform over the region, but every value (8 tasks over 4 gaits: 2
        each) is hit once n allows.
        """
        weights = np.array([_volume(box, params) for box in self.boxes])
        share = weights / weights.sum()
        if stratify_by:
            which = self._stratified_boxes(n, share, stratify_by, rng)
        else:
            which = rng.choice(len(self.boxes), size=n, p=share)
        out = {name: np.empty(n) for name in self.names}
        for b, box in enumerate(self.boxes):
            rows = np.flatnonzero(which == b)
            for name, interval in box.items():
                param = params[name]
                lo, hi = param.to_sampling(interval.lo), param.to_sampling(interval.hi)
                u = rng.uniform(lo, hi, size=rows.size)
                out[name][rows] = interval.lo if interval.is_point else param.from_sampling(u)
        return out


    def _stratified_boxes(self, n: int, share: np.ndarray, stratify_by: Sequence[str],
                          rng: np.random.Generator) -> np.ndarray:
        """Which box each of n points comes from, stratified by the values of `stratify_by`."""
        keys = []
        for box in self.boxes:
            if not all(box[name].is_point for name in stratify_by):
                raise ValueError(f"stratify_by {list(stratify_by)}: every box must hold a "
                                 "single value of each")
            keys.append(tuple(box[name].lo for name in stratify_by))
        strata = list(dict.fromkeys(keys))
        stratum_of = np.array([strata.index(key) for key in keys])
        stratum_share = np.bincount(stratum_of, weights=share, minlength=len(strata))
        counts = np.floor(n * stratum_share).astype(np.int64)
        extra = rng.choice(len(strata), size=n - counts.sum(), replace=False, p=stratum_share)
        counts += np.bincount(extra, minlength=len(strata))
        which = rng.permutation(np.repeat(np.arange(len(strata)), counts))
        if len(strata) == len(self.boxes):  # one box per stratum, in box order
            return which
        boxes = np.empty(n, dtype=np.int64)
        for s in range(len(strata)):
            rows, members = np.flatnonzero(which == s), np.flatnonzero(stratum_of == s)
            boxes[rows] = rng.choice(members, size=rows.size,
                                     p=share[members] / share[members].sum())
        return boxes


def _boxes_intersect(a: Box, b: Box) -> bool:
    return all(a[name].intersects(b[name]) for name in a)


def _volume(box: Box, params: Mapping[str, Param]) -> float:
    """Volume in the sampling scale; a point counts as length one."""
    volume = 1.0
    for name, interval in box.items():
        if not interval.is_point:
            p = params[name]
            volume *= p.to_sampling(interval.hi) - p.to_sampling(interval.lo)
    return volume


def box(**intervals: tuple[float, float]) -> Region:
    """One box: `box(goal_velocity=(0.0, 2.0))` is [0, 2)."""
    return Region((_as_box(intervals),))


def choice(name: str, values: Iterable[float]) -> Region:
    """A union of points of one parameter: `choice("leg", [0, 1, 2])`."""
    return Region(tuple({name: Interval(v, v)} for v in values))


def shell(outer: Mapping[str, tuple[float, float]],
          inner: Mapping[str, tuple[float, float]]) -> Region:
    """The outer box minus the inner box, as disjoint slabs (inner must lie inside outer).

    Slab (d, side) holds the points whose first parameter outside the inner box is the
    d-th, on that side; so the slabs are disjoint and cover the shell exactly.
    """
    if set(outer) != set(inner):
        raise ValueError(f"shell: outer and inner must name the same parameters, got "
                         f"{sorted(outer)} and {sorted(inner)}")
    names = list(outer)
    for name in names:
        (olo, ohi), (ilo, ihi) = outer[name], inner[name]
        if not olo <= ilo < ihi <= ohi:
            raise ValueError(f"shell: inner {name} range [{ilo}, {ihi}) must lie inside "
                             f"outer [{olo}, {ohi})")
    slabs = []
    for d, name in enumerate(names):
        (olo, ohi), (ilo, ihi) = outer[name], inner[name]
        for side in ((olo, ilo), (ihi, ohi)):
            if side[0] == side[1]:
                continue
            slab = {n: inner[n] for n in names[:d]}
            slab[name] = side
            slab.update({n: outer[n] for n in names[d + 1:]})
            slabs.append(_as_box(slab))
    return Region(tuple(slabs))


def product(regions: Sequence[Region]) -> Region:
    """The cartesian product of regions over disjoint parameter sets."""
    seen: set[str] = set()
    for region in regions:
        if seen & set(region.names):
            raise ValueError(f"product: parameters {sorted(seen & set(region.names))} "
                             "appear in two regions")
        seen |= set(region.names)
    boxes = [dict(itertools.chain.from_iterable(b.items() for b in combo))
             for combo in itertools.product(*(r.boxes for r in regions))]
    return Region(tuple(boxes))


def union(regions: Sequence[Region]) -> Region:
    """The union of disjoint regions over the same parameters."""
    return Region(tuple(itertools.chain.from_iterable(r.boxes for r in regions)))


def _as_box(intervals: Mapping[str, tuple[float, float]]) -> Box:
    return {name: Interval(float(lo), float(hi)) for name, (lo, hi) in intervals.items()}
