"""Statistics of evaluation records: point estimates with bootstrap confidence intervals.

The end of the data flow (records -> stats -> tables and plots). Every function takes
plain arrays of scores, usually one array per run (a stratum) holding one score per task
(the mean return of that task's evaluation episodes), and uses scipy for the resampling.

Confidence intervals are 95% percentile intervals of a stratified bootstrap: each
replicate resamples the tasks of every run separately, with replacement, so the interval
measures how much the estimate would move with another draw of tasks and episodes.
Seed-to-seed variation shows as the spread of the per-run estimates (`per_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A statistic and its confidence interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values."""
    return stats.trim_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _check_strata(strata: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=float) for s in strata]
    if not arrays or any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise ValueError(f"{what}: need at least one non-empty 1-D array of scores, got "
                         f"shapes {[a.shape for a in arrays]}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"{what}: scores contain NaN or inf")
    return arrays


def _bootstrap(strata: list[np.ndarray], statistic: Callable[..., np.ndarray],
               seed: int) -> Estimate:
    """statistic(*strata, axis=-1) with a stratified percentile interval."""
    value = float(statistic(*strata, axis=-1))
    if all(a.size == 1 for a in strata) or all(np.ptp(a) == 0 for a in strata):
        return Estimate(value, value, value)  # nothing to resample
    result = stats.bootstrap(tuple(strata), statistic, n_resamples=RESAMPLES,
                             confidence_level=CONFIDENCE, method="percentile",
                             vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Estimate(value, float(low), float(high))


def pooled(reduce: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """The statistic `reduce` applied to all strata pooled together."""
    def statistic(*strata: np.ndarray, axis: int = -1) -> np.ndarray:
        return reduce(np.concatenate(strata, axis=axis), axis=axis)
    return statistic


def estimate(strata: Sequence[np.ndarray], reduce: Callable[..., np.ndarray] = mean, *,
             seed: int = 0) -> Estimate:
    """`reduce` (mean or iqm) of the pooled scores, with a stratified bootstrap interval.

    strata: one 1-D array of scores per run, e.g. [tasks] of mean returns.
    """
    return _bootstrap(_check_strata(strata, "estimate"), pooled(reduce), seed)


def difference(first: Sequence[np.ndarray], second: Sequence[np.ndarray], *,
               seed: int = 0) -> Estimate:
    """mean(first) - mean(second) for two independent sets of scores (e.g. the
    generalization gap: ID scores minus OOD scores), each stratified by run."""
    a = _check_strata(first, "difference (first)")
    b = _check_strata(second, "difference (second)")

    def statistic(*strata: np.ndarray, axis: int = -1) -> np.ndarray:
        return (np.concatenate(strata[:len(a)], axis=axis).mean(axis=axis)
                - np.concatenate(strata[len(a):], axis=axis).mean(axis=axis))
    return _bootstrap(a + b, statistic, seed)


def probability_of_improvement(x_per_task: Sequence[np.ndarray],
                               y_per_task: Sequence[np.ndarray], *, seed: int = 0) -> Estimate:
    """P(X > Y): the chance that a score of X beats a score of Y on the same task (ties
    count half), averaged over tasks, with a bootstrap interval over tasks.

    x_per_task[t], y_per_task[t]: the scores (runs x episodes) of X and Y on task t. Per
    task this is the Mann-Whitney U statistic divided by the number of pairs.
    """
    if len(x_per_task) != len(y_per_task) or not x_per_task:
        raise ValueError(f"probability_of_improvement: need the same tasks for both, got "
                         f"{len(x_per_task)} and {len(y_per_task)}")
    per_task = []
    for x, y in zip(_check_strata(x_per_task, "probability_of_improvement (x)"),
                    _check_strata(y_per_task, "probability_of_improvement (y)"), strict=True):
        per_task.append(stats.mannwhitneyu(x, y).statistic / (x.size * y.size))
    return _bootstrap([np.asarray(per_task)], pooled(mean), seed)


def per_run(strata: Sequence[np.ndarray], reduce: Callable[..., np.ndarray] = mean
            ) -> list[float]:
    """`reduce` of each run's scores separately."""
    return [float(reduce(a)) for a in _check_strata(strata, "per_run")]
