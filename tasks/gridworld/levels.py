"""Training levels: the first seeds whose levels differ, so N training levels are N
distinct layouts."""

from __future__ import annotations

from collections.abc import Callable

from tasks.gridworld.grid import Level

SEARCH_FACTOR = 20  # seeds tried per distinct level wanted (and 1000 more) before giving up


def check_train_levels(family: str, train_levels: object) -> None:
    """Refuse a `train_levels` option that is not an integer >= 1, naming the family."""
    if isinstance(train_levels, bool) or not isinstance(train_levels, int) \
            or train_levels < 1:
        raise ValueError(f"family {family!r}: option train_levels must be an integer >= 1, "
                         f"got {train_levels!r}")


def first_distinct_seeds(level_of: Callable[[int], Level], count: int, *, family: str,
                         generator: str, available: int | None = None) -> tuple[int, ...]:
    """The first `count` seeds (0, 1, ...) whose levels differ from every earlier one.
    `available`: how many distinct levels the generator can make, if known."""
    if available is not None and count > available:
        raise ValueError(f"family {family!r}: option train_levels must be at most "
                         f"{available} for {generator} (the generator's distinct levels), "
                         f"got {count}")
    seen: set[bytes] = set()
    seeds: list[int] = []
    tried = SEARCH_FACTOR * count + 1000
    for seed in range(tried):
        layout = level_of(seed).cells.tobytes()
        if layout not in seen:
            seen.add(layout)
            seeds.append(seed)
            if len(seeds) == count:
                return tuple(seeds)
    raise ValueError(f"family {family!r}: only {len(seeds)} distinct levels among the "
                     f"first {tried} seeds for {generator}; option train_levels must be "
                     f"at most that, got {count}")
