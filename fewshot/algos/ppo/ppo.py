"""PPO over trials (learner stage of the data flow): RL² and the multi-task baselines.

- `rl2`: a recurrent actor-critic, trials of `rl2.episodes_per_trial` episodes of one
  task; it adapts through its memory.
- `ppo`: a Markov actor-critic, trials of one episode (`episodes_per_task` per task):
  the non-adaptive, domain-randomized baseline.
- `oracle`: the same, told the task's parameters: the upper reference.

Each trial is one sequence: GAE runs over the whole trial, so value estimates are
bootstrapped across the episode boundaries inside it (the agent's objective is the
trial's return) and only the trial's end is final. Updates replay every trial from a
zero hidden state (back-propagation through the whole trial), in minibatches of trials;
with `rl2.bptt_window` W, windows of W steps from the hidden states the sampler had
there (truncated back-propagation), in minibatches of windows.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fewshot.algos.ppo.config import PPOSettings
from fewshot.collect import Batch
from fewshot.maths.distributions import categorical_kl
from fewshot.maths.returns import ReturnScale, discounted_returns, gae, masked_mean, normalize
from fewshot.nn.actor_critic import ActorCritic


def trial_advantages(batch: Batch, *, gamma: float, gae_lambda: float,
                     reward_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over each trial as one sequence, and the value targets (advantage + value), of
    the rewards divided by `reward_scale` (the critic's values are in those units).

    `valid_TN` marks the whole trial, so an episode's end inside it is not a cut: the
    value after it is the value at the next episode's first step.
    """
    value_TN = batch.extras["value"].double()
    adv_TN = gae(batch.rew_TN.double() / reward_scale, value_TN, batch.valid_TN, gamma,
                 gae_lambda)
    return adv_TN, (adv_TN + value_TN) * batch.valid_TN


def replay_sequences(steps_TN: dict[str, torch.Tensor], state_TNH: torch.Tensor, *,
                     window: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """What the update replays: sequences [L, M, ...] and the hidden state each starts from.

    window 0: the N whole trials (L = T), from the state before their first step (zero).
    window W: each trial cut into windows of W steps (the last one padded as invalid),
    each starting from the hidden state the sampler had there (truncated BPTT); windows
    with no valid step are dropped. Window w of trial n is sequence w * N + n.
    """
    T, N = state_TNH.shape[:2]
    if window == 0 or window >= T:
        return steps_TN, state_TNH[0]
    count = -(-T // window)

    def cut(x_TN: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x_TN, x_TN.new_zeros(count * window - T, *x_TN.shape[1:])])
        windows = padded.reshape(count, window, *x_TN.shape[1:]).transpose(0, 1)
        return windows.reshape(window, count * N, *x_TN.shape[2:])

    sequences = {name: cut(x) for name, x in steps_TN.items()}
    keep_M = sequences["valid"].any(0)
    start_MH = state_TNH[::window].reshape(count * N, state_TNH.shape[2])
    return {name: x[:, keep_M] for name, x in sequences.items()}, start_MH[keep_M]


class PPO:
    """A PPO learner over trials: its actor-critic and the update. `bptt_window` is
    RL²'s truncated back-propagation (0: whole trials)."""

    def __init__(self, *, policy: ActorCritic, config: PPOSettings,
                 bptt_window: int = 0) -> None:
        self.policy = policy
        self.config = config
        self.bptt_window = bptt_window
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
        self.return_scale = ReturnScale()

    def update(self, batch: Batch, generator: torch.Generator, *,
               anchor_logp_TNA: torch.Tensor | None = None,
               anchor_coef: float = 0.0) -> dict[str, float]:
        """PPO epochs over minibatches of trials (or windows); `generator` orders them.

        anchor_logp_TNA: optionally, log-probabilities [T, N, A] of a fixed policy over
        the Discrete choices at the batch's steps; the loss then adds `anchor_coef` times
        the mean KL(pi(.|s) || anchor(.|s)) over the valid steps, pulling pi towards it
        (LEEP's regulariser towards its ensemble's combined policy). The anchor is data:
        no gradient flows into whatever produced it.
        """
        cfg = self.config
        anchored = anchor_logp_TNA is not None
        if anchored and not self.policy.discrete:
            raise ValueError("PPO.update: an anchor policy needs Discrete choices")
        if cfg.scale_rewards:
            self.return_scale.update(discounted_returns(batch.rew_TN.double(), batch.valid_TN,
                                                        cfg.gamma), batch.valid_TN)
        adv_TN, target_TN = trial_advantages(batch, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                                             reward_scale=self.return_scale.std)
        if cfg.normalize_advantages:
            adv_TN = normalize(adv_TN, batch.valid_TN)
        sequences, start_MH = replay_sequences(
            {"inputs": batch.extras["inputs"], "act": batch.act_TN, "logp": batch.logp_TN,
             "valid": batch.valid_TN, "adv": adv_TN.float(), "target": target_TN.float(),
             **({"anchor": anchor_logp_TNA.detach()} if anchored else {})},
            batch.extras["state"], window=self.bptt_window)
        M = start_MH.shape[0]
        size = max(1, M // cfg.minibatches)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
                "clip_fraction": 0.0, **({"anchor_kl": 0.0} if anchored else {}),
                **({"input_l1": 0.0} if cfg.input_l1 > 0 else {})}
        count = 0
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(M, generator=generator)
            for first in range(0, M, size):
                chosen = order[first:first + size]
                stats = self._minibatch_step({k: v[:, chosen] for k, v in sequences.items()},
                                             start_MH[chosen], anchor_coef)
                for key, value in stats.items():
                    sums[key] += value
                count += 1
        return {key: value / count for key, value in sums.items()}

    def _minibatch_step(self, seq: dict[str, torch.Tensor], start_MH: torch.Tensor,
                        anchor_coef: float) -> dict[str, float]:
        """One clipped-objective step on sequences [L, M, ...] replayed from start_MH
        (plus anchor_coef x the KL to seq["anchor"], when there is one)."""
        cfg = self.config
        valid_LM, adv_LM = seq["valid"], seq["adv"]
        head_LMA, value_LM, _ = self.policy(seq["inputs"], start_MH)
        logp_LM = self.policy.log_prob(head_LMA, seq["act"])
        log_ratio_LM = logp_LM - seq["logp"]
        ratio_LM = torch.exp(log_ratio_LM)
        clipped_LM = torch.clamp(ratio_LM, 1 - cfg.clip, 1 + cfg.clip)
        policy_loss = -masked_mean(torch.minimum(ratio_LM * adv_LM, clipped_LM * adv_LM),
                                   valid_LM)
        value_loss = masked_mean((value_LM - seq["target"]) ** 2, valid_LM)
        entropy = masked_mean(self.policy.entropy(head_LMA), valid_LM)
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        extra = {}
        if cfg.input_l1 > 0:
            input_l1 = sum(w.abs().sum() for w in self.policy.input_weights())
            loss = loss + cfg.input_l1 * input_l1
            extra["input_l1"] = float(input_l1.detach())
        if "anchor" in seq:
            anchor_kl = masked_mean(categorical_kl(torch.log_softmax(head_LMA, -1),
                                                   seq["anchor"]), valid_LM)
            loss = loss + anchor_coef * anchor_kl
            extra["anchor_kl"] = float(anchor_kl.detach())
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            approx_kl = masked_mean((ratio_LM - 1) - log_ratio_LM, valid_LM)
            clip_fraction = masked_mean(((ratio_LM - 1).abs() > cfg.clip).float(), valid_LM)
        return {"policy_loss": float(policy_loss.detach()),
                "value_loss": float(value_loss.detach()),
                "entropy": float(entropy.detach()), "approx_kl": float(approx_kl),
                "clip_fraction": float(clip_fraction), **extra}

    def copy_for_finetuning(self) -> PPO:
        """The same policy and reward scale (the critic's values are in its units), a new
        optimizer: what fine-tuning on one task's episodes starts from."""
        copied = PPO(policy=copy.deepcopy(self.policy), config=self.config,
                     bptt_window=self.bptt_window)
        copied.return_scale.load_state_dict(self.return_scale.state_dict())
        return copied

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "return_scale": self.return_scale.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.config.scale_rewards:  # runs made before reward scaling have no scale
            self.return_scale.load_state_dict(state["return_scale"])

