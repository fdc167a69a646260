"""Timing for benchmarks: wall time of repeated calls, and how many cores other processes
kept busy meanwhile (they compete for the CPUs, so a benchmark reports it beside its
numbers). Used by throughput.py; interleave configurations and compare them as ratios."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

WARMUP_STEPS = 20       # calls before sizing a configuration
PROBE_SECONDS = 0.25    # timing used to estimate a configuration's speed
MIN_TIMED_STEPS = 20    # calls per timed run, at least


def seconds_for(loop, vector_steps: int) -> float:
    """Wall time of `vector_steps` calls of the loop, under no_grad, with the loop's
    torch thread count (set back to 1 afterwards)."""
    torch.set_num_threads(loop.torch_threads)
    try:
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(vector_steps):
                loop()
            return time.perf_counter() - start
    finally:
        torch.set_num_threads(1)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (or stolen by the hypervisor), from
    Linux's /proc/stat; nan elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def timed_run(loop, vector_steps: int) -> tuple[float, float]:
    """Wall seconds of a run, and the cores other processes kept busy meanwhile on
    average (they compete with the run for the CPUs)."""
    machine_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    seconds = seconds_for(loop, vector_steps)
    others = (busy_cpu_seconds() - machine_before) - (own_cpu_seconds() - own_before)
    return seconds, max(0.0, others / seconds)


def warm_up_and_size(loop, target_seconds: float) -> int:
    """Warm the loop up, then the number of calls that takes ~target_seconds. A loop whose
    call is long (a whole episode) sets its own `min_calls` for warm-up and timed runs."""
    least = getattr(loop, "min_calls", None)
    seconds_for(loop, least or WARMUP_STEPS)
    steps, elapsed = 1, 0.0
    while elapsed < PROBE_SECONDS:
        steps *= 2
        elapsed = seconds_for(loop, steps)
    return max(least or MIN_TIMED_STEPS, math.ceil(target_seconds * steps / elapsed))


def rotated(keys: Sequence[str], by: int) -> list[str]:
    by %= len(keys)
    return [*keys[by:], *keys[:by]]
