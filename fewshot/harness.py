"""The adaptation harness: scores any learner on frozen task sets and returns records.

R(k), k = 0..K, is the return of the episode a learner runs on a task after it has seen
k episodes of that task. One trial per (task, evaluation episode) runs K + 1 episodes in
a row: episode k + 1 of the trial is R(k)'s sample, and the learner then sees it. So
R(0) is zero-shot, and a learner that does not adapt has a flat curve.

Task sets are frozen from a seed per split and stored with the results, so learners
evaluated with the same seed face the same tasks. A learner samples the episodes it runs
with the same knowledge together (a block: the whole trial for a fixed policy or RL²,
one inner step's worth for MAML, one episode for the counting references); each block
is seeded by (seed, split, k of its first episode).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fewshot.adapters import Learner
from fewshot.records import TASK_PREFIX, Records
from fewshot.runtime import derived_seed

SPLIT_CODES = {"train": 0, "test-id": 1, "test-ood": 2}


@dataclass(frozen=True)
class EvaluationSettings:
    """What the harness runs: the same for every learner that is to be compared."""

    splits: tuple[str, ...] = ("test-id", "test-ood")
    episodes: int = 3
    """K: the curve runs from k = 0 (zero-shot) to k = K episodes seen."""
    tasks: int = 20
    """Tasks per split."""
    trials: int = 5
    """Evaluation episodes per task and k (independent trials)."""
    seed: int = 0
    """Seed of the frozen task sets and of the env and action noise."""
    horizon: int | None = None
    """Steps per episode (default: the family's)."""

    def __post_init__(self) -> None:
        for name, low in (("episodes", 0), ("tasks", 1), ("trials", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"evaluation setting {name} must be an integer >= {low}, "
                                 f"got {value!r}")
        if not self.splits:
            raise ValueError("evaluation setting splits: name at least one split")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"evaluation setting horizon must be >= 1, got {self.horizon}")


def check_splits(family: Any, splits: Sequence[str]) -> None:
    unknown = [s for s in splits if s not in family.splits]
    if unknown:
        raise ValueError(f"family {family.name!r} does not declare the splits {unknown}; "
                         f"its splits are {list(family.splits)}")


def freeze_tasks(family: Any, settings: EvaluationSettings) -> dict[str, list[Any]]:
    """The evaluation tasks of each split: a pure function of (family, splits, count, seed)."""
    check_splits(family, settings.splits)
    return {split: family.sample(settings.tasks, split,
                                 np.random.default_rng([settings.seed, SPLIT_CODES[split]]))
            for split in settings.splits}


def evaluate(learner: Learner, family: Any, task_sets: Mapping[str, Sequence[Any]],
             settings: EvaluationSettings, *, run: str, run_seed: int,
             on_block: Callable[[int], None] | None = None) -> Records:
    """Run every split's trials and return one record per (split, task, k, episode).

    on_block(episodes) is called after each block of episodes (for progress bars).
    """
    check_splits(family, list(task_sets))
    rows: list[dict[str, Any]] = []
    for split, split_tasks in task_sets.items():
        M, J = len(split_tasks), settings.trials
        trial_tasks = [task for task in split_tasks for _ in range(J)]  # trial i: task i // J
        adaptation = learner.start(family, trial_tasks, horizon=settings.horizon)
        k = 0
        while k <= settings.episodes:
            size = min(adaptation.block, settings.episodes + 1 - k)
            episodes = adaptation.run_block(
                size, seed=derived_seed(settings.seed, SPLIT_CODES[split], k))
            for trial in range(M * J):
                task_index = trial // J
                params = {TASK_PREFIX + name: value for name, value in
                          family.task_to_dict(split_tasks[task_index]).items()}
                for j in range(size):
                    rows.append({
                        "learner": learner.name, "run": run, "run_seed": run_seed,
                        "split": split, "task": task_index, "k": k + j,
                        "episode": trial % J, "return": float(episodes.returns[trial, j]),
                        "length": int(episodes.lengths[trial, j]),
                        "terminated": bool(episodes.terminated[trial, j]),
                        "diverged": bool(episodes.diverged[trial, j]), **params})
            k += size
            if on_block is not None:
                on_block(M * J * size)
    return Records.from_rows(rows)
