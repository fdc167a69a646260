"""The learner protocol the harness scores: how each learner adapts, episode by episode.

A `Learner` starts one trial per task; the trial's `Adaptation` runs episodes with what
it has learnt so far and learns from them. The harness only calls these two methods, so
MAML, memory-based learners, ensembles and fixed policies are scored the same way:

    adaptation = learner.start(family, tasks, horizon=None)  # one trial per task
    episodes = adaptation.run_block(count, seed)  # `count` episodes of every trial, then learn

Algorithms offer their learners through the registry (fewshot/registry.py); this module
holds the protocol, what a block returns (`Episodes`), and `FixedAgentLearner`, a
learner that never adapts (a policy with frozen weights, the random policy, a scripted
oracle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fewshot.collect import Agent, Batch, Collector
from fewshot.collect.agents import GaussianAgent

ALL_AT_ONCE = 1 << 30  # the block of a learner whose episodes can all be sampled together


@dataclass
class Episodes:
    """What the harness records of a block: arrays [trials, C episodes of the block]."""

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    diverged: np.ndarray
    outcomes: dict[str, np.ndarray]

    @classmethod
    def from_batch(cls, batch: Batch) -> Episodes:
        """A batch whose tasks are the harness's trials: trial k's episodes are its task's
        J trials x E episodes, in order."""
        K = batch.num_tasks

        def per_trial(x_NE: Any) -> np.ndarray:
            return x_NE.numpy().reshape(K, -1)  # [K * J, E] -> [K, J * E]

        return cls(returns=per_trial(batch.episode_returns()),
                   lengths=per_trial(batch.episode_lengths()),
                   terminated=per_trial(batch.episode_flag(batch.terminated_TN)),
                   diverged=per_trial(batch.episode_flag(batch.diverged_TN)),
                   outcomes={name: per_trial(flags)
                             for name, flags in batch.episode_outcomes().items()})

    @classmethod
    def concat(cls, blocks: Sequence[Episodes]) -> Episodes:
        """Blocks of different trials, stacked: [sum of trials, C]."""
        return cls(*(np.concatenate([getattr(b, f) for b in blocks])
                     for f in ("returns", "lengths", "terminated", "diverged")),
                   outcomes={name: np.concatenate([b.outcomes[name] for b in blocks])
                             for name in blocks[0].outcomes})


class Adaptation(Protocol):
    """One learner's trials on a list of tasks (one trial per task)."""

    block: int
    """Episodes the learner runs with the same knowledge before it learns from them
    (ALL_AT_ONCE when it samples a whole trial in one go)."""

    def run_block(self, count: int, seed: int) -> Episodes:
        """Run `count` (at most `block`) episodes of every trial with what has been learnt
        so far, then learn from them."""
        ...


class Learner(Protocol):
    name: str

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> Adaptation:
        """Begin one trial per task, with nothing learnt about it yet."""
        ...


class Collectors:
    """Collectors built on first use, one per block size: `make(count)` builds the one for
    blocks of `count` episodes."""

    def __init__(self, make: Callable[[int], Collector]) -> None:
        self.make = make
        self._built: dict[int, Collector] = {}

    def get(self, count: int) -> Collector:
        if count not in self._built:
            self._built[count] = self.make(count)
        return self._built[count]


def block_collectors(family: Any, num_trials: int, horizon: int | None) -> Collectors:
    """Collectors for a fixed list of trials: `count` one-episode trials of each per block."""
    return Collectors(lambda count: Collector(family=family, num_envs=num_trials * count,
                                              horizon=horizon))


class FixedAgentLearner:
    """A learner that never adapts: the same agent runs every episode, so its curve R(k)
    is flat by construction (a policy never adapted, the random policy, an oracle)."""

    def __init__(self, *, name: str, agent: Agent) -> None:
        self.name = name
        self.agent = agent

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _FixedAdaptation:
        return _FixedAdaptation(self.agent, list(tasks),
                                block_collectors(family, len(tasks), horizon))


def fixed_policy(policy: Any, *, name: str) -> FixedAgentLearner:
    """A Gaussian policy (run with its own parameters) that never adapts."""
    return FixedAgentLearner(name=name, agent=GaussianAgent(policy, [policy.params()]))


class _FixedAdaptation:
    block = ALL_AT_ONCE  # nothing changes between episodes

    def __init__(self, agent: Agent, tasks: list[Any], collectors: Collectors) -> None:
        self.agent, self.tasks, self.collectors = agent, tasks, collectors

    def run_block(self, count: int, seed: int) -> Episodes:
        batch = self.collectors.get(count).collect(self.agent, self.tasks,
                                                   trials_per_task=count, seed=seed)
        return Episodes.from_batch(batch)
