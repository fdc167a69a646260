"""Catastrophe prediction from an ensemble's disagreement: collected batches -> ROC curves.

An agent built on M networks records every member's value of the state it acts in (extras
"values", [T, N, M]). Each step is a binary example: positive when the episode enters a
catastrophe within the next W steps (`step_labels`), scored by U = alpha mu + beta sigma,
the mean and the standard deviation of the members' values (`risk_scores`). A threshold
on U raises an alarm; the ROC curve shows every threshold's true and false positive
rates, and its AUC is the chance that a positive step scores above a negative one.

The AUC's interval resamples levels (the batch's K tasks), not steps: the steps of one
episode are strongly correlated, so the level is the unit a fresh draw would change.

Letters: T steps, N trials (one episode each), M members, K tasks (levels).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from fewshot.eval.stats import CONFIDENCE, RESAMPLES, Estimate

WINDOWS = (1, 10)
GRID = ((-1.0, 0.0), (-1.0, 0.5), (-1.0, 1.0), (-1.0, 2.0), (0.0, 1.0))
"""(alpha, beta) pairs scored by default. A ROC curve depends only on how the scores rank
the steps, so U and c U (c > 0) give the same curve and only the direction of (alpha,
beta) matters: mu alone (-1, 0), sigma alone (0, 1) and three mixes. Alpha is negative
because catastrophes come with low values; (1, 0) would be mu's curve reversed."""
ROC_POINTS = 101


# The pieces ---------------------------------------------------------------------------

def step_labels(catastrophe_TN: Any, valid_TN: Any, window: int) -> np.ndarray:
    """Bool [T, N]: step t of trial n is positive when its episode has a catastrophe at
    a step s with t <= s < t + window.

    catastrophe_TN: the family's `catastrophe` flag, set on the step whose action enters
    the catastrophe (so window 1 marks exactly that step: the decision at the state before
    it). valid_TN: the steps that belong to their trial. Each trial is one episode; its
    invalid steps (after the episode's end) are never positive, and a flag on them is
    ignored.
    """
    check_window(window)
    catastrophe_TN = np.asarray(catastrophe_TN, dtype=bool)
    valid_TN = np.asarray(valid_TN, dtype=bool)
    if catastrophe_TN.ndim != 2 or catastrophe_TN.shape != valid_TN.shape:
        raise ValueError(f"step_labels: catastrophe_TN and valid_TN must be [T, N] of one "
                         f"shape, got {catastrophe_TN.shape} and {valid_TN.shape}")
    T = catastrophe_TN.shape[0]
    # catastrophes at steps < t, for t = 0..T: those in [t, t + window) are a difference
    before_TN = np.concatenate([np.zeros_like(catastrophe_TN[:1], dtype=np.int64),
                                np.cumsum(catastrophe_TN & valid_TN, axis=0)])
    ahead_TN = before_TN[np.minimum(np.arange(T) + window, T)] - before_TN[:T]
    return (ahead_TN > 0) & valid_TN


def risk_scores(values_TNM: Any, alpha: float, beta: float) -> np.ndarray:
    """U = alpha mu + beta sigma, float64 [T, ...]: mu the mean and sigma the population
    standard deviation (ddof 0: the M members are the whole ensemble, not a sample of
    one, and an ensemble of one has sigma 0) of the members' values, the last axis.

    Higher U means more alarm. Catastrophes come with LOW values, so a useful alpha is
    negative (alpha = -1, beta = 0 ranks steps by mu alone, lowest first); beta > 0 adds
    the members' disagreement.
    """
    values_TNM = np.asarray(values_TNM, dtype=np.float64)
    if values_TNM.ndim < 1 or values_TNM.shape[-1] < 1:
        raise ValueError(f"risk_scores: values need a last axis of M >= 1 members, got "
                         f"shape {values_TNM.shape}")
    return alarm(values_TNM.mean(-1), values_TNM.std(-1, ddof=0), alpha, beta)


def alarm(mu: Any, sigma: Any, alpha: float, beta: float) -> np.ndarray:
    """U = alpha mu + beta sigma from the members' mean and standard deviation."""
    check_weights(alpha, beta)
    return alpha * np.asarray(mu, dtype=np.float64) + beta * np.asarray(sigma,
                                                                         dtype=np.float64)


def bootstrap_aucs(score_TN: Any, label_TN: Any, valid_TN: Any, level_N: Any, *, seed: int,
                   resamples: int = RESAMPLES) -> np.ndarray:
    """The AUCs of `resamples` bootstrap replicates that resample levels: each draws as
    many levels as there are, with replacement (a seeded numpy Generator), and scores the
    valid steps of every drawn copy (as integer sample weights, which sklearn treats as
    repeats). A replicate whose steps hold a single class has no AUC and is skipped, so
    the result may be shorter than `resamples` (the interval is then conditional on both
    classes appearing).

    level_N: the level of each trial (trials of one level move together).
    """
    score_S, label_S, steps_N, _ = _scored_steps(score_TN, label_TN, valid_TN, level_N)
    aucs = [weighted_auc(score_S, label_S, np.repeat(weight_N, steps_N))
            for weight_N in level_draws(level_N, seed=seed, resamples=resamples)]
    return np.asarray([auc for auc in aucs if auc is not None], dtype=np.float64)


def level_draws(level_N: Any, *, seed: int, resamples: int = RESAMPLES
                ) -> Iterator[np.ndarray]:
    """`resamples` bootstrap replicates of the levels, as weights of the trials [N]: each
    replicate draws as many levels as there are, with replacement (a seeded numpy
    Generator), and a trial weighs as many times as its level was drawn."""
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    levels_K, column_N = np.unique(np.asarray(level_N), return_inverse=True)
    rng = np.random.default_rng(seed)
    K = levels_K.size
    for _ in range(resamples):
        yield np.bincount(rng.integers(K, size=K), minlength=K)[column_N]


def weighted_auc(score_S: np.ndarray, label_S: np.ndarray, weight_S: np.ndarray
                 ) -> float | None:
    """scikit-learn's AUC of the steps with integer weights (repeats; 0 leaves a step
    out), or None when the steps kept hold a single class."""
    kept_S = weight_S > 0
    if label_S[kept_S].all() or not label_S[kept_S].any():
        return None
    return float(roc_auc_score(label_S[kept_S], score_S[kept_S],
                               sample_weight=weight_S[kept_S].astype(np.float64)))


def auc_estimate(score_TN: Any, label_TN: Any, valid_TN: Any, level_N: Any, *,
                 seed: int = 0, resamples: int = RESAMPLES) -> tuple[Estimate, int]:
    """The AUC (scikit-learn's roc_auc_score over the valid steps) with a CONFIDENCE
    percentile interval over `bootstrap_aucs`, and the number of replicates that had
    both classes and built it. With a single level every replicate is the data itself,
    and the interval is the point.
    """
    score_S, label_S, _, _ = _scored_steps(score_TN, label_TN, valid_TN, level_N)
    check_both_classes(label_S)
    value = float(roc_auc_score(label_S, score_S))
    aucs = bootstrap_aucs(score_TN, label_TN, valid_TN, level_N, seed=seed,
                          resamples=resamples)
    if aucs.size == 0:
        raise ValueError(f"auc_estimate: none of the {resamples} resamples of levels held "
                         f"both classes; give more levels or more resamples")
    return percentile_interval(value, aucs), int(aucs.size)


def percentile_interval(value: float, replicates: np.ndarray) -> Estimate:
    """value with the CONFIDENCE percentile interval of its bootstrap replicates."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(value, float(low), float(high))


@dataclass(frozen=True)
class Roc:
    """A ROC curve: false and true positive rates at decreasing thresholds on U (an alarm
    rises at U >= threshold). The first point, (0, 0), is above every score: sklearn gives
    it the threshold inf."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def as_dict(self) -> dict[str, list]:
        """Lists for JSON; the infinite first threshold becomes None."""
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(),
                "thresholds": [float(x) if np.isfinite(x) else None
                               for x in self.thresholds]}


def roc(score_TN: Any, label_TN: Any, valid_TN: Any, *, points: int = ROC_POINTS) -> Roc:
    """scikit-learn's roc_curve over the valid steps, thinned to at most `points` points
    evenly spread along it (its first and last points kept) to keep reports small."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"roc: points must be an integer >= 2, got {points!r}")
    valid_TN = np.asarray(valid_TN, dtype=bool)
    label_S = np.asarray(label_TN, dtype=bool)[valid_TN]
    check_both_classes(label_S)
    fpr, tpr, thresholds = roc_curve(label_S, np.asarray(score_TN, dtype=np.float64)[valid_TN])
    keep = np.unique(np.round(np.linspace(0, fpr.size - 1, min(points, fpr.size))).astype(int))
    return Roc(fpr[keep], tpr[keep], thresholds[keep])


# A batch ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Steps:
    """What a prediction reads of a batch, per step [T, N]: the members' mean (mu) and
    population standard deviation (sigma) of the state's value, whether the step is
    valid, and whether it enters a catastrophe; and each trial's level [N]. Saved next to
    a prediction (`save`, one compressed .npz), it scores any window and (alpha, beta)
    again without the run, and joins other runs on the same levels (`mean_auc`)."""

    mu_TN: np.ndarray
    sigma_TN: np.ndarray
    valid_TN: np.ndarray
    catastrophe_TN: np.ndarray
    level_N: np.ndarray

    FIELDS = ("mu_TN", "sigma_TN", "valid_TN", "catastrophe_TN", "level_N")

    @classmethod
    def of_batch(cls, batch: Any, learner: str = "the batch's agent") -> Steps:
        values_TNM = check_batch(batch, learner)
        return cls(mu_TN=values_TNM.mean(-1), sigma_TN=values_TNM.std(-1, ddof=0),
                   valid_TN=batch.valid_TN.numpy().astype(bool),
                   catastrophe_TN=batch.outcomes["catastrophe"].numpy().astype(bool),
                   level_N=np.arange(batch.num_trials) // batch.trials_per_task)

    def scores(self, alpha: float, beta: float) -> np.ndarray:
        """U [T, N]."""
        return alarm(self.mu_TN, self.sigma_TN, alpha, beta)

    def labels(self, window: int) -> np.ndarray:
        """Positive steps [T, N] for `window`."""
        return step_labels(self.catastrophe_TN, self.valid_TN, window)

    def save(self, path: Path) -> None:
        """One compressed .npz (the caller makes the write atomic)."""
        with open(path, "wb") as f:
            np.savez_compressed(f, **{name: getattr(self, name) for name in self.FIELDS})

    @classmethod
    def load(cls, path: Path) -> Steps:
        with np.load(path) as data:
            missing = [name for name in cls.FIELDS if name not in data.files]
            if missing:
                raise ValueError(f"{path}: not a step record of a prediction; it lacks "
                                 f"{missing}")
            return cls(**{name: data[name] for name in cls.FIELDS})


@dataclass(frozen=True)
class Prediction:
    """How well U = alpha mu + beta sigma predicts a catastrophe within `window` steps.

    auc and roc are None when the steps hold a single class (no catastrophe, or every
    step positive): then there is nothing to rank, and the counts say so.
    """

    window: int
    alpha: float
    beta: float
    positives: int     # valid steps with a catastrophe within the window
    negatives: int     # the other valid steps
    auc: Estimate | None
    resamples: int     # bootstrap replicates with both classes, behind auc's interval
    roc: Roc | None

    def as_dict(self) -> dict[str, Any]:
        return {"window": self.window, "alpha": self.alpha, "beta": self.beta,
                "positives": self.positives, "negatives": self.negatives,
                "auc": None if self.auc is None else self.auc.as_dict(),
                "resamples": self.resamples,
                "roc": None if self.roc is None else self.roc.as_dict()}


def predict_catastrophes(batch: Any, *, windows: Sequence[int] = WINDOWS,
                         grid: Sequence[tuple[float, float]] = GRID, seed: int = 0,
                         resamples: int = RESAMPLES, points: int = ROC_POINTS,
                         learner: str = "the batch's agent") -> list[Prediction]:
    """For each window and each (alpha, beta) of `grid`, in that order: how well the
    ensemble's values predict a catastrophe within the window, over the valid steps of a
    `fewshot.collect.Batch`.

    The batch: one episode per trial (E = 1), collected by an agent that records every
    member's value (extras "values" [T, N, M]: EnsembleAgent, QAgent), on a family with a
    `catastrophe` outcome. Its K tasks are the levels the interval resamples (trial n is
    task n // J); every window and pair uses the same `seed`, so their intervals come
    from the same resampled levels. `learner` names the agent in errors. Cost: one roc_auc_score per
    replicate, window and pair (about 2 ms each for a few thousand steps).
    """
    return predict(Steps.of_batch(batch, learner), windows=windows, grid=grid, seed=seed,
                   resamples=resamples, points=points)


def predict(steps: Steps, *, windows: Sequence[int] = WINDOWS,
            grid: Sequence[tuple[float, float]] = GRID, seed: int = 0,
            resamples: int = RESAMPLES, points: int = ROC_POINTS) -> list[Prediction]:
    """`predict_catastrophes` of a batch's step record."""
    windows = check_windows(windows)
    grid = check_grid(grid)
    predictions = []
    for window in windows:
        label_TN = steps.labels(window)
        positives = int(label_TN.sum())
        negatives = int(steps.valid_TN.sum()) - positives
        for alpha, beta in grid:
            auc, used, curve = None, 0, None
            if positives and negatives:
                score_TN = steps.scores(alpha, beta)
                auc, used = auc_estimate(score_TN, label_TN, steps.valid_TN, steps.level_N,
                                         seed=seed, resamples=resamples)
                curve = roc(score_TN, label_TN, steps.valid_TN, points=points)
            predictions.append(Prediction(window=window, alpha=alpha, beta=beta,
                                          positives=positives, negatives=negatives, auc=auc,
                                          resamples=used, roc=curve))
    return predictions


# Several runs on the same levels ------------------------------------------------------

def mean_auc(runs: Sequence[Steps], window: int, pair: tuple[float, float], *,
             baseline: tuple[float, float] | None = None, seed: int = 0,
             resamples: int = RESAMPLES) -> tuple[Estimate, int]:
    """The mean over `runs` (seeds of one learner, played on the same levels) of the AUC
    of U(pair) for `window`; with `baseline`, the mean of AUC(pair) - AUC(baseline), the
    paired gain of one (alpha, beta) over another on the same steps. The interval
    resamples the shared levels: each replicate draws one set of levels for every run
    and both pairs (a replicate where some run's steps hold a single class is skipped).
    Also returns the replicates used."""
    runs = list(runs)
    if not runs:
        raise ValueError("mean_auc: give at least one run's steps")
    for other in runs[1:]:
        if not np.array_equal(other.level_N, runs[0].level_N):
            raise ValueError("mean_auc: the runs were not played on the same levels (their "
                             "level_N differ); predict them with the same --eval-seed, "
                             "--tasks and --trials")
    check_window(window)
    pairs = [pair] if baseline is None else [pair, baseline]
    columns = []  # per run and pair: scores, labels, steps per trial
    for steps in runs:
        label_TN = steps.labels(window)
        for alpha, beta in pairs:
            score_S, label_S, steps_N, _ = _scored_steps(
                steps.scores(alpha, beta), label_TN, steps.valid_TN, steps.level_N)
            check_both_classes(label_S)
            columns.append((score_S, label_S, steps_N))

    def statistic(weight_N: np.ndarray) -> float | None:
        aucs = [weighted_auc(score_S, label_S, np.repeat(weight_N, steps_N))
                for score_S, label_S, steps_N in columns]
        if any(auc is None for auc in aucs):
            return None
        by_run = np.asarray(aucs).reshape(len(runs), len(pairs))
        gain = by_run[:, 0] if baseline is None else by_run[:, 0] - by_run[:, 1]
        return float(gain.mean())

    value = statistic(np.ones_like(runs[0].level_N))
    replicates = [statistic(w) for w in level_draws(runs[0].level_N, seed=seed,
                                                     resamples=resamples)]
    replicates = np.asarray([r for r in replicates if r is not None])
    if replicates.size == 0:
        raise ValueError(f"mean_auc: none of the {resamples} resamples of levels held both "
                         f"classes in every run; give more levels or more resamples")
    return percentile_interval(value, replicates), int(replicates.size)


# Checks -------------------------------------------------------------------------------

def check_window(window: Any) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"windows: each window must be an integer >= 1 (steps), got "
                         f"{window!r}")


def check_windows(windows: Sequence[int]) -> list[int]:
    windows = list(windows)
    if not windows:
        raise ValueError("windows: give at least one window (steps), e.g. [1, 10]")
    for window in windows:
        check_window(window)
    return [int(w) for w in windows]


def check_weights(alpha: Any, beta: Any) -> None:
    for name, x in (("alpha", alpha), ("beta", beta)):
        if isinstance(x, bool) or not isinstance(x, (int, float, np.number)) or not np.isfinite(x):
            raise ValueError(f"grid: {name} must be a finite number, got {x!r}")
    if alpha == 0 and beta == 0:
        raise ValueError("grid: (alpha, beta) = (0, 0) scores every step the same; give "
                         "a pair with alpha or beta non-zero")


def check_grid(grid: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pairs = [tuple(pair) for pair in grid]
    if not pairs:
        raise ValueError("grid: give at least one (alpha, beta) pair, e.g. [(-1, 0), (-1, 1)]")
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"grid: each entry must be an (alpha, beta) pair, got {pair!r}")
        check_weights(*pair)
    return [(float(a), float(b)) for a, b in pairs]


def check_both_classes(label_S: np.ndarray) -> None:
    positives = int(label_S.sum())
    if positives == 0 or positives == label_S.size:
        raise ValueError(f"an AUC needs positive and negative steps; got {positives} "
                         f"positive of {label_S.size}")


def check_batch(batch: Any, learner: str) -> np.ndarray:
    """The batch's members' values [T, N, M], once it is known to suit a prediction."""
    values = batch.extras.get("values")
    if values is None:
        raise ValueError(f"catastrophe prediction needs an ensemble's values (extras "
                         f"'values' [T, N, M]); learner {learner} records none (its extras: "
                         f"{sorted(batch.extras)})")
    if "catastrophe" not in batch.outcomes:
        raise ValueError(f"catastrophe prediction needs a family with a `catastrophe` "
                         f"outcome; this batch's family declares {sorted(batch.outcomes)}")
    if batch.episodes_per_trial != 1:
        raise ValueError(f"catastrophe prediction takes one episode per trial; this batch "
                         f"has {batch.episodes_per_trial}")
    if values.dim() != 3 or values.shape[:2] != batch.valid_TN.shape:
        raise ValueError(f"catastrophe prediction: extras 'values' must be [T, N, M] = "
                         f"[{', '.join(map(str, batch.valid_TN.shape))}, M], got "
                         f"{tuple(values.shape)}")
    return values.detach().double().numpy()


def _scored_steps(score_TN: Any, label_TN: Any, valid_TN: Any, level_N: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The valid steps' scores and labels, trial by trial (column-major) [S]; each trial's
    count of valid steps [N]; the distinct levels [K]."""
    score_TN = np.asarray(score_TN, dtype=np.float64)
    label_TN = np.asarray(label_TN, dtype=bool)
    valid_TN = np.asarray(valid_TN, dtype=bool)
    level_N = np.asarray(level_N)
    if not (score_TN.ndim == 2 and score_TN.shape == label_TN.shape == valid_TN.shape
            and level_N.shape == score_TN.shape[1:]):
        raise ValueError(f"scores, labels and valid must be [T, N] of one shape and levels "
                         f"[N]; got {score_TN.shape}, {label_TN.shape}, {valid_TN.shape} "
                         f"and {level_N.shape}")
    if not np.isfinite(score_TN[valid_TN]).all():
        raise ValueError("scores contain NaN or inf at valid steps")
    return (score_TN.T[valid_TN.T], label_TN.T[valid_TN.T], valid_TN.sum(0),
            np.unique(level_N))
