"""Rollouts: every family, run with a random policy in its batched env (`fewshot rollouts`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import gymnasium
import numpy as np

import tasks
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
    envs = family.make_vec(task_list, seed=seed, autoreset_mode="disabled")
    envs.reset()
    space = envs.single_action_space
    rng = np.random.default_rng(seed)
    returns = np.zeros(envs.num_envs)
    alive = np.ones(envs.num_envs, dtype=bool)
    start = time.perf_counter()
    for _ in range(family.horizon):
        if isinstance(space, gymnasium.spaces.Discrete):
            actions = rng.integers(0, space.n, envs.num_envs)
        else:
            actions = rng.uniform(space.low, space.high,
                                  (envs.num_envs, *space.shape)).astype(np.float32)
        _, reward, terminated, truncated, _ = envs.step(actions)
        returns += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    seconds = time.perf_counter() - start
    envs.close()
    return returns, envs.num_envs * family.horizon / seconds


def report(name: str, *, num_envs: int = 64, seed: int = 0) -> FamilyReport:
    family = tasks.get(name)
    rng = np.random.default_rng(seed)
    random_return, speeds = {}, []
    for split in family.splits:
        task_list = family.sample(num_envs, split, rng)
        returns, speed = random_episode_returns(family, task_list, seed=seed)
        random_return[split] = float(returns.mean())
        speeds.append(speed)
    envs = family.make_vec([family.default_task])
    return FamilyReport(
        family=name,
        splits={s: distinct_tasks(r) for s, r in family.splits.items()},
        obs_size=int(np.prod(envs.single_observation_space.shape)),
        action_size=int(getattr(envs.single_action_space, "n", 0)
                        or np.prod(envs.single_action_space.shape)),
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
