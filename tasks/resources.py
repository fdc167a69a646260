"""Refusing work that cannot fit: a request whose memory estimate exceeds what the machine
has available fails before any of it is allocated, with the estimate and the limit.

    refuse_unless_fits("200 tasks", 200 * bytes_per_task)

Used at every boundary that allocates in proportion to a user's number (tasks sampled,
envs built, steps collected), so `--horizon 1000000000000` is an error, not a hang.
"""

from __future__ import annotations

import os
from pathlib import Path

GIB = 2**30


class TooLargeError(ValueError):
    """The requested work needs more memory than the machine has available."""

    def __init__(self, what: str, needed: float, available: float) -> None:
        super().__init__(f"{what} needs about {_size(needed)} of memory; this machine has "
                         f"{_size(available)} available. Ask for less.")
        self.what, self.needed, self.available = what, needed, available

    def __reduce__(self) -> tuple:  # so it crosses processes (a sweep's workers)
        return type(self), (self.what, self.needed, self.available)


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux, else the
    physical memory)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_unless_fits(what: str, needed_bytes: float) -> None:
    """Raise TooLargeError unless `needed_bytes` fits in the memory available now."""
    if needed_bytes > available_memory():
        raise TooLargeError(what, float(needed_bytes), float(available_memory()))


def _size(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"
