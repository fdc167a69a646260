"""Rollouts: every family, run by the collector with uniform random actions in its batched
env (`fewshot rollouts`): a table of sizes, speed and the random policy's returns."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tasks
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import UniformAgent
from tasks.regions import Region


@dataclass
class FamilyReport:
    family: str
    splits: dict[str, str]    # split -> number of distinct tasks, or "inf"
    obs_size: int
    action_size: int
    horizon: int
    steps_per_second: float
    random_return: dict[str, float]  # split -> mean episode return of a random policy


def distinct_tasks(region: Region) -> str:
    """How many tasks a split holds: a count when every parameter is discrete."""
    if all(iv.is_point for box in region.boxes for iv in box.values()):
        return str(len(region.boxes))
    return "inf"


def random_episode_returns(family: tasks.TaskFamily, task_list: list, *,
                           seed: int) -> tuple[np.ndarray, float]:
    """One episode per task under uniform random actions; returns [N] and env-steps/s."""
    collector = Collector(family=family, num_envs=len(task_list))
    batch = collector.collect(UniformAgent(collector.spec), task_list, seed=seed)
    return batch.episode_returns()[:, 0].numpy(), collector.env_steps / collector.sample_seconds


def report(name: str, *, num_envs: int = 64, seed: int = 0) -> FamilyReport:
    family = tasks.get(name)
    rng = np.random.default_rng(seed)
    random_return, speeds = {}, []
    for split in family.splits:
        task_list = family.sample(num_envs, split, rng)
        returns, speed = random_episode_returns(family, task_list, seed=seed)
        random_return[split] = float(returns.mean())
        speeds.append(speed)
    spec = env_spec(family)
    return FamilyReport(
        family=name,
        splits={s: distinct_tasks(r) for s, r in family.splits.items()},
        obs_size=spec.obs_size, action_size=spec.action_size,
        horizon=family.horizon,
        steps_per_second=float(np.median(speeds)),
        random_return=random_return,
    )


def format_table(reports: list[FamilyReport]) -> str:
    header = ["family", "train", "test-id", "test-ood", "obs", "act", "horizon",
              "env-steps/s", "random return ID", "random return OOD"]
    rows = [header]
    for r in reports:
        ood = r.random_return.get("test-ood", math.nan)
        rows.append([r.family, r.splits["train"], r.splits["test-id"],
                     r.splits.get("test-ood", "-"), str(r.obs_size), str(r.action_size),
                     str(r.horizon), f"{r.steps_per_second:,.0f}",
                     f"{r.random_return['test-id']:.1f}",
                     "-" if math.isnan(ood) else f"{ood:.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
