"""The adaptation harness: scores any learner on frozen task sets and returns records.

R(k), k = 0..K, is the return of the episode a learner runs on a task after it has seen
k episodes of that task. One trial per (task, evaluation episode) runs K + 1 episodes in
a row: episode k + 1 of the trial is R(k)'s sample, and the learner then sees it. So
R(0) is zero-shot, and a learner that does not adapt has a flat curve.

Task sets are named lists of tasks: a family's declared splits frozen from a seed
(`freeze_tasks`), or sets of the user's own (`fewshot.eval.task_sets`). They are stored
with the results, so learners evaluated on the same sets face the same tasks. A learner
samples the episodes it runs with the same knowledge together (a block: the whole trial
for a fixed policy or RL², one inner step's worth for MAML, one episode for the counting
references); each block is seeded by (seed, set, k of its first episode).

Records carry each episode's return, length, termination, divergence and the family's
declared outcomes (`outcome.success`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fewshot.eval.learner import Learner
from fewshot.eval.records import OUTCOME_PREFIX, TASK_PREFIX, Records
from fewshot.eval.task_sets import check_task_sets, set_code
from fewshot.runtime import derived_seed
from tasks.resources import refuse_unless_fits

BYTES_PER_RECORD = 1024  # an episode's row (measured ~0.5 KiB) and its share of the columns


@dataclass(frozen=True)
class EvaluationSettings:
    """What the harness runs: the same for every learner that is to be compared."""

    splits: tuple[str, ...] = ("test-id", "test-ood")
    """The family's declared splits to freeze task sets from (may be empty when the user
    gives task sets of their own)."""
    episodes: int = 3
    """K: the curve runs from k = 0 (zero-shot) to k = K episodes seen."""
    tasks: int = 20
    """Tasks per frozen split."""
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
        if isinstance(self.splits, str) or not all(isinstance(s, str) for s in self.splits):
            raise ValueError(f"evaluation setting splits must be a list of split names, "
                             f"got {self.splits!r}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"evaluation setting horizon must be >= 1, got {self.horizon}")


def check_splits(family: Any, splits: Sequence[str]) -> None:
    unknown = [s for s in splits if s not in family.splits]
    if unknown:
        raise ValueError(f"family {family.name!r} does not declare the splits {unknown}; "
                         f"its splits are {list(family.splits)}")


def freeze_tasks(family: Any, settings: EvaluationSettings) -> dict[str, list[Any]]:
    """The evaluation tasks of each split: a pure function of (family, splits, count, seed).

    A split with discrete parameters is stratified over its values, so every value
    appears once the count allows (see `TaskFamily.sample(cover=True)`).
    """
    check_splits(family, settings.splits)
    return {split: family.sample(settings.tasks, split,
                                 np.random.default_rng([settings.seed, set_code(split)]),
                                 cover=True)
            for split in settings.splits}


def evaluate(learner: Learner, family: Any, task_sets: Mapping[str, Sequence[Any]],
             settings: EvaluationSettings, *, run: str, run_seed: int,
             on_block: Callable[[int], None] | None = None) -> Records:
    """Run every task set's trials and return one record per (set, task, k, episode).

    on_block(episodes) is called after each block of episodes (for progress bars).
    """
    check_task_sets(family, task_sets)
    episodes = sum(len(ts) for ts in task_sets.values()) * settings.trials * (
        settings.episodes + 1)
    refuse_unless_fits(f"{episodes} evaluation episodes (tasks x {settings.trials} trials x "
                       f"{settings.episodes + 1} values of k)", episodes * BYTES_PER_RECORD)
    rows: list[dict[str, Any]] = []
    for split, split_tasks in task_sets.items():
        M, J = len(split_tasks), settings.trials
        trial_tasks = [task for task in split_tasks for _ in range(J)]  # trial i: task i // J
        adaptation = learner.start(family, trial_tasks, horizon=settings.horizon)
        params = [{TASK_PREFIX + name: value for name, value in
                   family.task_to_dict(task).items()} for task in split_tasks]
        k = 0
        while k <= settings.episodes:
            size = min(adaptation.block, settings.episodes + 1 - k)
            episodes = adaptation.run_block(
                size, seed=derived_seed(settings.seed, set_code(split), k))
            for trial in range(M * J):
                for j in range(size):
                    rows.append({
                        "learner": learner.name, "run": run, "run_seed": run_seed,
                        "split": split, "task": trial // J, "k": k + j,
                        "episode": trial % J, "return": float(episodes.returns[trial, j]),
                        "length": int(episodes.lengths[trial, j]),
                        "terminated": bool(episodes.terminated[trial, j]),
                        "diverged": bool(episodes.diverged[trial, j]),
                        **{OUTCOME_PREFIX + name: bool(flags[trial, j])
                           for name, flags in episodes.outcomes.items()},
                        **params[trial // J]})
            k += size
            if on_block is not None:
                on_block(M * J * size)
    return Records.from_rows(rows)
