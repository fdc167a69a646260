"""Provenance: what produced a result. One function writes it for run manifests,
evaluations and benchmark JSON alike: the command, the time, the machine, package
versions, the source revision, and how busy the machine was with other processes."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("fewshot", "torch", "numpy", "gymnasium", "mujoco", "scipy")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES + extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str:
    """The source tree's git revision (with '+dirty' for local changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty.strip() else "")


def cpus() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def machine() -> dict[str, Any]:
    """Platform, CPU model, usable cores and memory."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        memory = None
    return {"platform": platform.platform(), "cpu_model": model, "cpus": cpus(),
            "cpu_count": os.cpu_count(), "memory_bytes": memory}


def other_load(seconds: float = 0.5) -> dict[str, Any]:
    """How busy the machine is with processes other than this one: the load averages and
    the CPU each other process used over `seconds` (from /proc; empty where there is no
    /proc)."""
    load = {"loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "other_processes": []}
    if not Path("/proc").is_dir() or seconds <= 0:
        return load
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    ticks = os.sysconf("SC_CLK_TCK") * seconds
    busy = [(pid, (after[pid][1] - before[pid][1]) / ticks, after[pid][0])
            for pid in after if pid in before and pid != os.getpid()]
    load["other_processes"] = [{"pid": pid, "command": name, "cores": round(share, 3)}
                               for pid, share, name in sorted(busy, key=lambda b: -b[1])
                               if share >= 0.05][:10]
    load["other_cores_busy"] = round(sum(share for _, share, _ in busy), 3)
    return load


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        ticks[int(stat.parent.name)] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def provenance(*, load_seconds: float = 0.0) -> dict[str, Any]:
    """The provenance block; `load_seconds` > 0 also samples other processes' CPU use."""
    return {"command": [sys.executable, *sys.argv],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "versions": package_versions(),
            "git_revision": git_revision(),
            "load": other_load(load_seconds) if load_seconds > 0 else
            {"loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}
