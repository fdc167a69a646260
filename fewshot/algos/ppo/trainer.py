"""The training iteration of the PPO-trained algorithms: trials of the training tasks
(collect), then the PPO update. RL²: one trial of `episodes_per_trial` episodes per
task; ppo and oracle: `episodes_per_task` one-episode trials per task (a Markov policy
gains nothing from longer trials).

Randomness: iteration i draws its tasks from default_rng([seed, i]), its env and action
noise from derived_seed(seed, i, 0) and its minibatch order from derived_seed(seed, i, 1).
"""

from __future__ import annotations

import numpy as np
import torch

from fewshot.algos.ppo.config import MarkovPPOConfig, PPOSettings, RL2Config
from fewshot.algos.ppo.ppo import PPO
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import ActorCriticAgent
from fewshot.registry import TrainContext
from fewshot.runtime import derived_seed


def trial_shape(config: PPOSettings) -> tuple[int, int]:
    """(trials per task, episodes per trial) of an iteration."""
    if isinstance(config, RL2Config):
        return 1, config.episodes_per_trial
    assert isinstance(config, MarkovPPOConfig)
    return config.episodes_per_task, 1


class PPOTrainer:
    """Trials of `meta_batch_size` training tasks per iteration, then a PPO update."""

    def __init__(self, learner: PPO, config: PPOSettings, context: TrainContext) -> None:
        self.learner, self.config, self.context = learner, config, context
        self.trials_per_task, self.episodes_per_trial = trial_shape(config)
        self.collector = Collector(family=context.family,
                                   num_envs=config.meta_batch_size * self.trials_per_task,
                                   horizon=context.horizon, nthread=context.nthread)
        self.collector.refuse_unless_fits(episodes_per_trial=self.episodes_per_trial,
                                          network=learner.policy)
        self.env_steps = 0  # steps of the episodes collected (restored on resume)

    def collect(self, iteration: int) -> tuple[Batch, dict[str, float]]:
        seed = self.context.seed
        tasks = self.context.family.sample(self.config.meta_batch_size, "train",
                                           np.random.default_rng([seed, iteration]))
        batch = self.collector.collect(ActorCriticAgent(self.learner.policy), tasks,
                                       trials_per_task=self.trials_per_task,
                                       episodes_per_trial=self.episodes_per_trial,
                                       seed=derived_seed(seed, iteration, 0))
        self.env_steps += int(batch.valid_TN.sum())
        returns_E = batch.episode_returns().mean(0)
        row = {"return_episode0": float(returns_E[0])}
        if len(returns_E) > 1:
            row[f"return_episode{len(returns_E) - 1}"] = float(returns_E[-1])
        return batch, {**row, "trial_return": float(returns_E.sum())}

    def update(self, batch: Batch, iteration: int) -> dict[str, float]:
        generator = torch.Generator().manual_seed(derived_seed(self.context.seed, iteration, 1))
        return self.learner.update(batch, generator)

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        last = [k for k in row if k.startswith("return_episode")][-1]
        return {"first": f"{row['return_episode0']:.2f}", "last": f"{row[last]:.2f}"}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
