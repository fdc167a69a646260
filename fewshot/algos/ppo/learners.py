"""What the PPO-trained runs offer the harness: the trained actor-critic over one trial
("trained"; RL² adapts by memory, the Markov baselines do not), the same taking its most
likely choice instead of sampling ("greedy"), and a ppo run's policy fine-tuned by PPO on
the episodes seen ("finetune")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fewshot.algos.ppo.config import PPOSettings
from fewshot.algos.ppo.ppo import PPO
from fewshot.checks import check_count
from fewshot.collect import Collector
from fewshot.collect.agents import ActorCriticAgent
from fewshot.eval.learner import ALL_AT_ONCE, Collectors, Episodes
from fewshot.runtime import derived_seed


class TrialAdapter:
    """A PPO-trained actor-critic at evaluation: one trial of K + 1 episodes, sampled in
    one go. RL² carries its hidden state across them (its only way to adapt); the Markov
    baselines (ppo, oracle) do not adapt, so their curves are flat."""

    def __init__(self, *, name: str, learner: PPO, greedy: bool = False) -> None:
        self.name, self.learner, self.greedy = name, learner, greedy

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _TrialAdaptation:
        return _TrialAdaptation(ActorCriticAgent(self.learner.policy, greedy=self.greedy),
                                family, list(tasks), horizon)


class _TrialAdaptation:
    block = ALL_AT_ONCE

    def __init__(self, agent: ActorCriticAgent, family: Any, tasks: list[Any],
                 horizon: int | None) -> None:
        self.agent, self.family, self.tasks, self.horizon = agent, family, tasks, horizon
        self.started = False

    def run_block(self, count: int, seed: int) -> Episodes:
        if self.started:
            raise RuntimeError("a trial runs in one block; start a new one")
        self.started = True
        collector = Collector(family=self.family, num_envs=len(self.tasks),
                              horizon=self.horizon)
        return Episodes.from_batch(collector.collect(self.agent, self.tasks,
                                                     episodes_per_trial=count, seed=seed))


class FinetuneAdapter:
    """Multi-task PPO fine-tuned at evaluation ("just fine-tune it"): each trial gets its
    own copy of the trained policy and a fresh optimizer, and after every
    `episodes_per_step` episodes takes one PPO update (the run's epochs and minibatches)
    on them. Episodes are sampled with the trial's current policy (PPO is on-policy)."""

    def __init__(self, *, name: str, learner: PPO, episodes_per_step: int) -> None:
        check_count("FinetuneAdapter", episodes_per_step=episodes_per_step)
        if learner.policy.memory:
            raise ValueError("finetune starts from a Markov policy (a ppo run)")
        self.name, self.learner = name, learner
        self.episodes_per_step = int(episodes_per_step)

    def start(self, family: Any, tasks: Sequence[Any], *,
              horizon: int | None = None) -> _FinetuneAdaptation:
        return _FinetuneAdaptation(self, family, list(tasks), horizon)


class _FinetuneAdaptation:
    def __init__(self, adapter: FinetuneAdapter, family: Any, tasks: list[Any],
                 horizon: int | None) -> None:
        self.block = adapter.episodes_per_step
        self.tasks = tasks
        self.learners = [adapter.learner.copy_for_finetuning() for _ in tasks]
        # a block of one trial: `count` one-episode trials of its task
        self.collectors = Collectors(lambda count: Collector(family=family, num_envs=count,
                                                             horizon=horizon))

    def run_block(self, count: int, seed: int) -> Episodes:
        collector = self.collectors.get(count)
        blocks = []
        for i, (task, learner) in enumerate(zip(self.tasks, self.learners, strict=True)):
            batch = collector.collect(ActorCriticAgent(learner.policy), [task],
                                      trials_per_task=count, seed=derived_seed(seed, i))
            if count == self.block:  # a shorter block ends the trial
                learner.update(batch, torch.Generator().manual_seed(derived_seed(seed, i, 1)))
            blocks.append(Episodes.from_batch(batch))
        return Episodes.concat(blocks)


def trained(learner: PPO, config: PPOSettings, *, name: str) -> TrialAdapter:
    """The trained actor-critic: RL² adapts by memory, ppo and oracle do not."""
    return TrialAdapter(name=name, learner=learner)


def greedy(learner: PPO, config: PPOSettings, *, name: str) -> TrialAdapter:
    """The trained actor-critic taking its most likely choice (or its Gaussian's mean)
    at every step: the deterministic policy an MDP's optimum is."""
    return TrialAdapter(name=name, learner=learner, greedy=True)


def finetune(learner: PPO, config: PPOSettings, *, name: str,
             episodes_per_step: int | None = None) -> FinetuneAdapter:
    """The ppo policy, fine-tuned by one PPO update after every `episodes_per_step`
    episodes (default 1)."""
    return FinetuneAdapter(name=name, learner=learner, episodes_per_step=episodes_per_step or 1)
