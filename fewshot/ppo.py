"""PPO over trials (learner stage of the data flow): RL² and the multi-task baselines.

- `rl2`: a recurrent actor-critic, trials of `ppo.episodes_per_trial` episodes of one
  task; it adapts through its memory.
- `ppo`: a Markov actor-critic, trials of one episode (`episodes_per_task` per task):
  the non-adaptive, domain-randomized baseline.
- `oracle`: the same, told the task's parameters: the upper reference.

Each trial is one sequence: GAE runs over the whole trial, so value estimates are
bootstrapped across the episode boundaries inside it (the agent's objective is the
trial's return) and only the trial's end is final. Updates replay every trial from a
zero hidden state (back-propagation through the whole trial), in minibatches of trials.
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.actor_critic import ActorCritic, MarkovActorCritic, RecurrentActorCritic
from fewshot.config import PPOConfig, TrainConfig
from fewshot.returns import ReturnScale, discounted_returns, gae, masked_mean, normalize
from fewshot.trial_sampler import TrialBatch


def trial_advantages(batch: TrialBatch, *, gamma: float, gae_lambda: float,
                     reward_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over each trial as one sequence, and the value targets (advantage + value), of
    the rewards divided by `reward_scale` (the critic's values are in those units).

    `valid_TN` marks the whole trial, so an episode's end inside it is not a cut: the
    value after it is the value at the next episode's first step.
    """
    value_TN = batch.value_TN.double()
    adv_TN = gae(batch.rew_TN.double() / reward_scale, value_TN, batch.valid_TN, gamma,
                 gae_lambda)
    return adv_TN, (adv_TN + value_TN) * batch.valid_TN


class PPO:
    """A PPO learner over trials: its actor-critic and the update."""

    def __init__(self, *, policy: ActorCritic, config: PPOConfig, gamma: float,
                 gae_lambda: float, normalize_advantages: bool) -> None:
        self.policy = policy
        self.config = config
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.normalize_advantages = normalize_advantages
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
        self.return_scale = ReturnScale()

    def update(self, batch: TrialBatch, generator: torch.Generator) -> dict[str, float]:
        """PPO epochs over minibatches of trials; `generator` orders the minibatches."""
        cfg = self.config
        if cfg.scale_rewards:
            self.return_scale.update(discounted_returns(batch.rew_TN.double(), batch.valid_TN,
                                                        self.gamma), batch.valid_TN)
        adv_TN, target_TN = trial_advantages(batch, gamma=self.gamma,
                                             gae_lambda=self.gae_lambda,
                                             reward_scale=self.return_scale.std)
        if self.normalize_advantages:
            adv_TN = normalize(adv_TN, batch.valid_TN)
        adv_TN, target_TN = adv_TN.float(), target_TN.float()
        N = batch.valid_TN.shape[1]
        size = max(1, N // cfg.minibatches)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
                "clip_fraction": 0.0}
        count = 0
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(N, generator=generator)
            for start in range(0, N, size):
                trials = order[start:start + size]
                stats = self._minibatch_step(batch, trials, adv_TN[:, trials],
                                             target_TN[:, trials])
                for key, value in stats.items():
                    sums[key] += value
                count += 1
        return {key: value / count for key, value in sums.items()}

    def _minibatch_step(self, batch: TrialBatch, trials: torch.Tensor, adv_TN: torch.Tensor,
                        target_TN: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        valid_TN = batch.valid_TN[:, trials]
        head_TNA, value_TN, _ = self.policy(batch.inputs_TNI[:, trials],
                                            self.policy.initial_state(len(trials)))
        logp_TN = self.policy.log_prob(head_TNA, batch.act_TN[:, trials])
        log_ratio_TN = logp_TN - batch.logp_TN[:, trials]
        ratio_TN = torch.exp(log_ratio_TN)
        clipped_TN = torch.clamp(ratio_TN, 1 - cfg.clip, 1 + cfg.clip)
        policy_loss = -masked_mean(torch.minimum(ratio_TN * adv_TN, clipped_TN * adv_TN),
                                   valid_TN)
        value_loss = masked_mean((value_TN - target_TN) ** 2, valid_TN)
        entropy = masked_mean(self.policy.entropy(head_TNA), valid_TN)
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            approx_kl = masked_mean((ratio_TN - 1) - log_ratio_TN, valid_TN)
            clip_fraction = masked_mean(((ratio_TN - 1).abs() > cfg.clip).float(), valid_TN)
        return {"policy_loss": float(policy_loss.detach()),
                "value_loss": float(value_loss.detach()),
                "entropy": float(entropy.detach()), "approx_kl": float(approx_kl),
                "clip_fraction": float(clip_fraction)}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "return_scale": self.return_scale.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.config.scale_rewards:  # runs made before reward scaling have no scale
            self.return_scale.load_state_dict(state["return_scale"])


PPO_ALGOS = ("rl2", "ppo", "oracle")


def build_ppo(config: TrainConfig, *, obs_size: int, action_size: int, discrete: bool,
              task_size: int) -> PPO:
    """The learner `config.algo` describes (seed torch first for reproducible weights)."""
    if config.algo == "rl2":
        policy: ActorCritic = RecurrentActorCritic(
            obs_size=obs_size, action_size=action_size, discrete=discrete,
            hidden_size=config.ppo.hidden_size, init_log_std=config.init_log_std)
    else:
        policy = MarkovActorCritic(
            obs_size=obs_size, action_size=action_size, discrete=discrete,
            hidden_sizes=config.hidden_sizes, init_log_std=config.init_log_std,
            task_size=task_size if config.algo == "oracle" else 0)
    return PPO(policy=policy, config=config.ppo, gamma=config.gamma,
               gae_lambda=config.gae_lambda, normalize_advantages=config.normalize_advantages)
