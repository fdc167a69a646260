"""Reference learners for families with discrete actions: uniform random choice, UCB1 and
Thompson sampling. They need no training and adapt by counting, so the harness scores
them like any learner: R(k) is the return of episode k + 1 of a trial.

Each keeps, per trial, how often each choice was made and the reward it earned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np

from fewshot.adapters import Episodes

# rule(counts [N, C], reward sums [N, C], rng) -> choices [N]
Rule = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def uniform(counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, counts.shape[1], counts.shape[0])


def ucb1(counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each choice once (lowest index first), then the largest mean + sqrt(2 ln t / n)."""
    untried = counts == 0
    t = counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = sums / counts + np.sqrt(2.0 * np.log(np.maximum(t, 1)) / counts)
    return np.where(untried.any(1), untried.argmax(1), score.argmax(1))


def thompson(counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample each choice's mean from its Beta(1 + wins, 1 + losses) posterior; take the
    best (rewards are taken as Bernoulli)."""
    return rng.beta(1.0 + sums, 1.0 + counts - sums).argmax(1)


RULES: dict[str, Rule] = {"random": uniform, "ucb1": ucb1, "thompson": thompson}


class ChoiceLearner:
    """A counting learner over a Discrete action space."""

    def __init__(self, *, name: str, rule: str) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {sorted(RULES)}, got {rule!r}")
        self.name, self.rule = name, RULES[rule]

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _ChoiceAdaptation:
        return _ChoiceAdaptation(self.rule, family, list(tasks), horizon)


class _ChoiceAdaptation:
    block = 1

    def __init__(self, rule: Rule, family: Any, tasks: list[Any],
                 horizon: int | None) -> None:
        self.rule = rule
        self.envs = family.make_vec(tasks, horizon=horizon, autoreset_mode="disabled")
        space = self.envs.single_action_space
        if not isinstance(space, gymnasium.spaces.Discrete):
            raise ValueError(f"family {family.name!r} has a {space} action space; counting "
                             "learners need discrete choices")
        self.counts = np.zeros((len(tasks), int(space.n)))
        self.sums = np.zeros_like(self.counts)

    def run_block(self, count: int, seed: int) -> Episodes:
        if count != 1:
            raise ValueError(f"counting learners run one episode at a time, got {count}")
        N = len(self.counts)
        rng = np.random.default_rng(seed)
        self.envs.reset(seed=seed)
        returns, lengths = np.zeros(N), np.zeros(N, dtype=np.int64)
        terminated, diverged = np.zeros(N, dtype=bool), np.zeros(N, dtype=bool)
        alive = np.ones(N, dtype=bool)
        for _ in range(self.envs.horizon):
            choice = self.rule(self.counts, self.sums, rng)
            _, reward, term, trunc, info = self.envs.step(choice)
            rows = np.flatnonzero(alive)
            np.add.at(self.counts, (rows, choice[rows]), 1.0)
            np.add.at(self.sums, (rows, choice[rows]), reward[rows])
            returns += np.where(alive, reward, 0.0)
            lengths += alive
            terminated |= term & alive
            diverged |= info["diverged"] & alive
            alive &= ~(term | trunc)
            if not alive.any():
                break
        return Episodes(returns[:, None], lengths[:, None], terminated[:, None],
                        diverged[:, None])
