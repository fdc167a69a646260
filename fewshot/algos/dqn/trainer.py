"""The training iteration of `dqn`: one episode in each of `num_envs` simulations, acting
epsilon-greedily (collect); then its transitions into the replay buffer, and gradient
steps on the Q-networks and the blocker (update).

Exploration follows Bootstrapped DQN: each episode acts with one member, drawn uniformly
when it starts, epsilon-greedily on that member's Q-values; epsilon falls linearly with
the env-steps taken. Each stored transition draws a bootstrap mask, one Bernoulli(
bootstrap_prob) flag per member (all ones with one member), which says which members
train on it.

Randomness: iteration i draws its tasks from default_rng([seed, i]), its env noise,
member draws and epsilon-greedy choices from derived_seed(seed, i, 0), and its bootstrap
masks and minibatches from derived_seed(seed, i, 1). The replay buffer is the trainer's
state, saved in every checkpoint, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from fewshot.algos.dqn.blocker import balanced_weights
from fewshot.algos.dqn.config import DQNConfig
from fewshot.algos.dqn.dqn import DQN, linear_epsilon
from fewshot.collect import Batch, Collector, env_spec
from fewshot.collect.agents import QAgent
from fewshot.collect.replay import ReplayBuffer
from fewshot.registry import TrainContext
from fewshot.runtime import derived_seed
from tasks.resources import refuse_unless_fits


def transitions(batch: Batch, label: str | None = None) -> dict[str, torch.Tensor]:
    """The valid steps of one-episode trials as transitions [B, ...], in time-major order:
    obs, act, rew, next_obs, terminated, and `complete` (the TD target is known: the
    episode terminated there, or it went on, so next_obs is the next step's observation;
    the last step of an episode cut at the horizon has no next observation in the batch,
    as the collector ends it there). With `label`, also "catastrophe": that outcome's flag.
    """
    if batch.episodes_per_trial != 1:
        raise ValueError(f"transitions: trials of one episode each, got "
                         f"{batch.episodes_per_trial}")
    valid_TN = batch.valid_TN
    next_valid_TN = torch.cat([valid_TN[1:], torch.zeros_like(valid_TN[:1])])
    next_obs_TNO = torch.cat([batch.obs_TNO[1:], torch.zeros_like(batch.obs_TNO[:1])])
    steps = {"obs": batch.obs_TNO, "act": batch.act_TN, "rew": batch.rew_TN,
             "next_obs": next_obs_TNO * next_valid_TN[..., None],
             "terminated": batch.terminated_TN,
             "complete": batch.terminated_TN | next_valid_TN}
    if label is not None:
        steps["catastrophe"] = batch.outcomes[label]
    return {name: x[valid_TN] for name, x in steps.items()}


def bootstrap_masks(count: int, members: int, prob: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Which members train on each of `count` transitions, [count, members] bool: each
    flag Bernoulli(prob), or all True for a single member."""
    if members == 1:
        return torch.ones(count, 1, dtype=torch.bool)
    return torch.rand(count, members, generator=generator) < prob


class DQNTrainer:
    """Episodes of `num_envs` training tasks per iteration, then `updates_per_iteration`
    gradient steps once the buffer holds `learning_starts` transitions."""

    def __init__(self, model: DQN, config: DQNConfig, context: TrainContext) -> None:
        family = context.family
        spec = env_spec(family)
        if not spec.discrete:
            raise ValueError(f"dqn needs Discrete actions; family {family.name!r} has Box")
        self.model, self.config, self.context = model, config, context
        self.collector = Collector(family=family, num_envs=config.num_envs,
                                   horizon=context.horizon, nthread=context.nthread)
        per_transition = 8 * spec.obs_size + 32 + config.ensemble_size
        refuse_unless_fits(f"a replay buffer of {config.buffer_size} transitions",
                           config.buffer_size * per_transition)
        self.buffer = ReplayBuffer(config.buffer_size)
        self.env_steps = 0  # steps of the episodes collected (restored on resume)

    def collect(self, iteration: int) -> tuple[Batch, dict[str, float]]:
        seed, cfg = self.context.seed, self.config
        tasks = self.context.family.sample(cfg.num_envs, "train",
                                           np.random.default_rng([seed, iteration]))
        epsilon = linear_epsilon(self.env_steps, start=cfg.epsilon_start, end=cfg.epsilon_end,
                                 decay_steps=cfg.epsilon_decay_steps)
        agent = QAgent(self.model.q, member="draw", epsilon=epsilon)
        batch = self.collector.collect(agent, tasks, seed=derived_seed(seed, iteration, 0))
        self.env_steps += int(batch.valid_TN.sum())
        rates = {f"{name}_rate": float(flags.double().mean())
                 for name, flags in batch.episode_outcomes().items()}
        return batch, {"return": batch.mean_return(), "epsilon": epsilon, **rates}

    def update(self, batch: Batch, iteration: int) -> dict[str, float]:
        cfg, model = self.config, self.model
        generator = torch.Generator().manual_seed(derived_seed(self.context.seed, iteration, 1))
        blocker = model.blocker
        steps = transitions(batch, cfg.catastrophe_outcome if blocker is not None else None)
        steps["mask"] = bootstrap_masks(len(steps["act"]), cfg.ensemble_size,
                                        cfg.bootstrap_prob, generator)
        self.buffer.add(**steps)
        sums = dict.fromkeys(["td_loss", "q_mean"] + (["blocker_loss"] if blocker else []), 0.0)
        count = cfg.updates_per_iteration if len(self.buffer) >= cfg.learning_starts else 0
        if blocker is not None and count:
            weights = balanced_weights(self.buffer.stored("catastrophe"))
        for _ in range(count):
            stats = model.td_step(self.buffer.sample(cfg.batch_size, generator))
            if blocker is not None:
                drawn = self.buffer.sample(cfg.batch_size, generator, weights=weights)
                stats["blocker_loss"] = blocker.update(drawn["obs"], drawn["act"],
                                                       drawn["catastrophe"])
            for key, value in stats.items():
                sums[key] += value
        return {**{key: value / max(count, 1) for key, value in sums.items()},
                "gradient_steps": model.gradient_steps}

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"return": f"{row['return']:.2f}", "epsilon": f"{row['epsilon']:.2f}"}

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
