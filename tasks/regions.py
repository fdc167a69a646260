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
import keyword
import math
import numbers
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.resources import refuse_unless_fits

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
        # the name becomes a field of the family's task dataclass
        if not isinstance(self.name, str) or not self.name.isidentifier() \
                or keyword.iskeyword(self.name):
            raise ValueError(f"a Param's name must be a Python identifier, got {self.name!r}")
        if self.scale not in SCALES:
            raise ValueError(f"Param {self.name!r}: scale must be one of {SCALES}, "
                             f"got {self.scale!r}")
        if self.values is not None:
            if not isinstance(self.values, tuple) or not self.values \
                    or not all(_is_integer(v) for v in self.values) \
                    or len(set(self.values)) != len(self.values):
                raise ValueError(f"Param {self.name!r}: values must be a non-empty tuple of "
                                 f"distinct integers, got {self.values!r}")
            if self.labels is not None and len(self.labels) != len(self.values):
                raise ValueError(f"Param {self.name!r}: {len(self.labels)} labels for "
                                 f"{len(self.values)} values")
            return
        if not (_is_finite(self.low) and _is_finite(self.high)):
            raise ValueError(f"Param {self.name!r}: low and high must be finite numbers, got "
                             f"[{self.low!r}, {self.high!r}]")
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
                             f"{self.describe()}, got {short_repr(value)}")
        if self.values is not None:
            if value not in self.values:
                raise ValueError(f"task parameter {self.name!r} must be "
                                 f"{self.describe()}, got {short_repr(value)}")
            return int(value)
        if not (_is_finite(value) and self.low <= value <= self.high):
            raise ValueError(f"task parameter {self.name!r} must be {self.describe()}, "
                             f"got {short_repr(value)}")
        return float(value)

    def label(self, value: int | float) -> str:
        """A short human-readable form of one value of this parameter."""
        if self.values is not None and self.labels is not None:
            return self.labels[self.values.index(int(value))]
        return f"{value:.3g}"

    # Regions are sampled uniformly in `to_sampling(x)`: x itself, or log x.
    def to_sampling(self, x: float) -> float:
        return math.log(x) if self.scale == "log" else float(x)

    def from_sampling(self, u: np.ndarray) -> np.ndarray:
        # libm's exp, not numpy's: numpy's SIMD exp differs in the last bit between CPUs
        # (with and without AVX-512), and a task set must be the same on every machine
        if self.scale != "log":
            return u
        u = np.asarray(u, dtype=np.float64)
        return np.array([math.exp(x) for x in u.ravel().tolist()]).reshape(u.shape)


@dataclass(frozen=True)
class Interval:
    """[lo, hi) for lo < hi; the single point {lo} for lo == hi."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        # regions are sampled uniformly, so an interval must have a finite width
        if not (_is_finite(self.lo) and _is_finite(self.hi)
                and math.isfinite(float(self.hi) - float(self.lo))):
            raise ValueError(f"Interval needs finite ends a finite distance apart, got "
                             f"[{self.lo!r}, {self.hi!r})")
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

# bytes per point drawn by Region.sample, per parameter: the output and the uniform draw
# (float64 each), plus the box index and row lists (int64 each) of the point
SAMPLE_BYTES_PER_VALUE, SAMPLE_BYTES_PER_POINT = 16, 24


@dataclass(frozen=True)
class Region:
    """A union of disjoint boxes over the same parameter names."""

    boxes: tuple[Box, ...]

    def __post_init__(self) -> None:
        if not self.boxes:
            raise ValueError("a Region needs at least one box")
        for box in self.boxes:
            if not isinstance(box, Mapping) or not all(
                    isinstance(n, str) and isinstance(i, Interval) for n, i in box.items()):
                raise ValueError(f"a Region's boxes map parameter names to Intervals, got "
                                 f"{box!r}")
        names = set(self.boxes[0])
        for box in self.boxes[1:]:
            if set(box) != names:
                raise ValueError(f"boxes of one Region must name the same parameters, got "
                                 f"{sorted(names)} and {sorted(box)}")
        overlap = _overlapping_pair([self.boxes])
        if overlap:
            raise ValueError(f"the boxes of a Region must be disjoint; {_show(overlap[0])} "
                             f"and {_show(overlap[1])} overlap")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.boxes[0])

    def contains(self, values: Mapping[str, float]) -> bool:
        missing = set(self.names) - set(values)
        if missing:
            raise ValueError(f"contains needs a value of each of {list(self.names)}; missing "
                             f"{sorted(missing)}")
        bad = {n: values[n] for n in self.names if not _is_real(values[n])}
        if bad:
            raise ValueError(f"contains takes numbers, got {bad}")
        return any(all(box[n].contains(values[n]) for n in box) for box in self.boxes)

    def intersects(self, other: Region) -> bool:
        if not isinstance(other, Region):
            raise ValueError(f"a Region intersects another Region, not {type(other).__name__}")
        if set(self.names) != set(other.names):
            raise ValueError(f"cannot compare regions over {sorted(self.names)} and "
                             f"{sorted(other.names)}")
        return _overlapping_pair([self.boxes, other.boxes]) is not None

    def sample(self, n: int, params: Mapping[str, Param], rng: np.random.Generator, *,
               stratify_by: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Draw n points uniformly from the region; returns one array [n] per parameter.

        stratify_by (discrete parameters, a point in every box): the region's strata are
        its distinct values of these; stratum s gets floor(n p_s) points (p_s its share of
        the volume) and the remainder goes to distinct strata drawn by p, in shuffled
        order. Still uniform over the region, but every value (8 tasks over 4 gaits: 2
        each) is hit once n allows.
        """
        if not _is_integer(n) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        missing = [name for name in self.names
                   if not isinstance(params.get(name), Param)]
        if missing:
            raise ValueError(f"sampling needs a Param for each of {list(self.names)}; "
                             f"missing {missing}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        unknown = [name for name in stratify_by if name not in self.names]
        if unknown:
            raise ValueError(f"stratify_by names {unknown}, not parameters of this region "
                             f"({list(self.names)})")
        n = int(n)
        refuse_unless_fits(f"{n} points of a region over {len(self.names)} parameters",
                           n * (SAMPLE_BYTES_PER_POINT
                                + SAMPLE_BYTES_PER_VALUE * len(self.names)))
        share = self._shares(params)
        if stratify_by:
            which = self._stratified_boxes(n, share, stratify_by, rng)
        else:
            which = rng.choice(len(self.boxes), size=n, p=share)
        out = {name: np.empty(n) for name in self.names}
        for b, box in enumerate(self.boxes):
            rows = np.flatnonzero(which == b)
            for name, interval in box.items():
                param = params[name]
                lo = param.to_sampling(interval.lo)
                hi = lo if interval.is_point else param.to_sampling(interval.hi)  # not -0.0
                u = rng.uniform(lo, hi, size=rows.size)  # for points too: same draws
                if interval.is_point:
                    out[name][rows] = interval.lo
                else:  # uniform may round onto hi, exp(log lo) fall below lo: keep [lo, hi)
                    out[name][rows] = np.clip(param.from_sampling(u), interval.lo,
                                              np.nextafter(interval.hi, -np.inf))
        return out

    def _shares(self, params: Mapping[str, Param]) -> np.ndarray:
        """Each box's share of the region's volume (in the sampling scale). A product of
        many small widths underflows, so volumes are compared by their logarithms."""
        log_volume = np.array([_log_volume(box, params) for box in self.boxes])
        weights = np.array([math.exp(v) for v in log_volume - log_volume.max()])
        return weights / weights.sum()

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
        index = {key: s for s, key in enumerate(strata)}
        stratum_of = np.array([index[key] for key in keys])
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


def _overlapping_pair(groups: Sequence[Sequence[Box]]) -> tuple[Box, Box] | None:
    """Two intersecting boxes from different groups (from the one group, if only one is
    given), or None.

    Comparing every pair takes n^2 steps: hours for the 4 x 100,000 points of a large
    discrete grid. Instead the boxes are split, one parameter after the other, into
    runs whose intervals chain along it (sorted by lo, a run ends where the next lo
    passes every hi so far); boxes in different runs cannot meet, so only boxes sharing
    a run in every parameter are compared.
    """
    tagged = [(g, box) for g, boxes in enumerate(groups) for box in boxes]
    runs = [tagged]
    for name in tagged[0][1] if tagged else ():
        runs = [r for run in runs for r in _runs_along(run, name) if len(r) > 1]
    for run in runs:
        members = [[box for g, box in run if g == group] for group in range(len(groups))]
        pairs = (itertools.combinations(members[0], 2) if len(groups) == 1 else
                 itertools.chain.from_iterable(itertools.product(members[i], members[j])
                                               for i, j in itertools.combinations(
                                                   range(len(groups)), 2)))
        for a, b in pairs:
            if _boxes_intersect(a, b):
                return a, b
    return None


def _runs_along(tagged: list[tuple[int, Box]], name: str) -> list[list[tuple[int, Box]]]:
    runs: list[list[tuple[int, Box]]] = []
    reach = -math.inf
    for item in sorted(tagged, key=lambda item: item[1][name].lo):
        interval = item[1][name]
        if not runs or interval.lo > reach:
            runs.append([])
        runs[-1].append(item)
        reach = max(reach, interval.hi)
    return runs


def _log_volume(box: Box, params: Mapping[str, Param]) -> float:
    """Log of the volume in the sampling scale; a point counts as length one."""
    log_volume = 0.0
    for name, interval in box.items():
        if not interval.is_point:
            p = params[name]
            log_volume += math.log(p.to_sampling(interval.hi) - p.to_sampling(interval.lo))
    return log_volume


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
    outer, inner = _as_box(outer), _as_box(inner)
    names = list(outer)
    for name in names:
        o, i = outer[name], inner[name]
        if not o.lo <= i.lo < i.hi <= o.hi:
            raise ValueError(f"shell: inner {name} range [{i.lo}, {i.hi}) must lie inside "
                             f"outer [{o.lo}, {o.hi})")
    slabs = []
    for d, name in enumerate(names):
        o, i = outer[name], inner[name]
        for side in (Interval(o.lo, i.lo), Interval(i.hi, o.hi)):
            if side.is_point:
                continue
            slab = {n: inner[n] for n in names[:d]}
            slab[name] = side
            slab.update({n: outer[n] for n in names[d + 1:]})
            slabs.append(slab)
    if not slabs:
        raise ValueError("shell: inner is the whole of outer, so the shell is empty")
    return Region(tuple(slabs))


def product(regions: Sequence[Region]) -> Region:
    """The cartesian product of regions over disjoint parameter sets."""
    seen: set[str] = set()
    for region in regions:
        if not isinstance(region, Region):
            raise ValueError(f"product takes Regions, got {type(region).__name__}")
        if seen & set(region.names):
            raise ValueError(f"product: parameters {sorted(seen & set(region.names))} "
                             "appear in two regions")
        seen |= set(region.names)
    boxes = [dict(itertools.chain.from_iterable(b.items() for b in combo))
             for combo in itertools.product(*(r.boxes for r in regions))]
    return Region(tuple(boxes))


def union(regions: Sequence[Region]) -> Region:
    """The union of disjoint regions over the same parameters."""
    for region in regions:
        if not isinstance(region, Region):
            raise ValueError(f"union takes Regions, got {type(region).__name__}")
    return Region(tuple(itertools.chain.from_iterable(r.boxes for r in regions)))


def _as_box(intervals: Mapping[str, tuple[float, float]]) -> Box:
    box = {}
    for name, ends in intervals.items():
        if not (isinstance(ends, (tuple, list)) and len(ends) == 2
                and all(_is_real(end) for end in ends)):
            raise ValueError(f"the range of {name} must be a pair of numbers (lo, hi), got "
                             f"{ends!r}")
        lo, hi = ends
        if not (_is_finite(lo) and _is_finite(hi)):
            raise ValueError(f"the range of {name} must be finite, got [{lo!r}, {hi!r})")
        box[name] = Interval(float(lo), float(hi))
    return box


def short_repr(value: object) -> str:
    """repr, cut short: an error message quotes what it got, not the whole of it."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    short.maxlong = 40
    return short.repr(value)


def _show(box: Box) -> str:
    return "{" + ", ".join(f"{n}={i.lo}" if i.is_point else f"{n} in [{i.lo}, {i.hi})"
                           for n, i in box.items()) + "}"


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _is_integer(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_finite(x: object) -> bool:
    """A real number that is not NaN or infinite (an int too large for a float is not)."""
    if not _is_real(x):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False
