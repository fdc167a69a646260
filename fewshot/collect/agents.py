"""Agents the collector runs: a Gaussian policy with per-task parameters, an actor-critic
with memory (or without), an ensemble of Markov actor-critics, an ensemble of Q-networks
(epsilon-greedy, optionally with a blocker of catastrophic choices), and uniform random
actions.

Each one fixes its randomness from the seed `begin` gets, with a torch.Generator that
draws one batch of noise per step, so a collection is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from fewshot.collect.collector import Action, Trials
from fewshot.collect.spec import EnvSpec
from fewshot.maths.distributions import max_combined_log_probs
from fewshot.nn.actor_critic import ActorCritic
from fewshot.nn.ensemble import Ensemble
from fewshot.nn.policy import distribution, log_prob, sample_action


class GaussianAgent:
    """A Gaussian policy run with explicit parameters: `params[k]` acts for the trials of
    task k (the collector's columns k*J .. (k+1)*J - 1). One shared parameter set is
    evaluated once; K distinct sets are stacked once per collection and evaluated
    together with vmap. Sampling never needs their gradients: the agent holds them
    detached."""

    def __init__(self, policy: nn.Module,
                 params: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.policy, self.params = policy, list(params)
        self.dtype = next(policy.parameters()).dtype
        self.discrete = False
        self.generator = torch.Generator()
        self.stacked: dict[str, torch.Tensor] | None = None

    def begin(self, trials: Trials, seed: int) -> None:
        if len(self.params) not in (1, trials.num_tasks):
            raise ValueError(f"GaussianAgent: {len(self.params)} parameter sets for "
                             f"{trials.num_tasks} tasks; give one set, or one per task")
        self.generator.manual_seed(seed)
        shared = all(p is self.params[0] for p in self.params)
        self.stacked = None if shared else {
            name: torch.stack([p[name].detach() for p in self.params])
            for name in self.params[0]}

    def act(self, obs_NO: torch.Tensor) -> Action:
        if self.stacked is None:
            mean_NA, log_std_A = distribution(self.policy, self.params[0], obs_NO)
            log_std_NA = log_std_A.expand_as(mean_NA)
        else:
            mean_NA, log_std_NA = per_task_distribution(self.policy, self.stacked, obs_NO)
        act_NA = sample_action(mean_NA, log_std_NA, self.generator)
        return Action(act_NA, log_prob(mean_NA, log_std_NA, act_NA))

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        pass


def per_task_distribution(policy: nn.Module, stacked: Mapping[str, torch.Tensor],
                          obs_NO: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [N, A] and log-std [N, A] from K parameter sets stacked along a first
    dimension: rows k*J .. (k+1)*J - 1 from set k."""
    K = next(iter(stacked.values())).shape[0]
    mean_KJA, log_std_KA = torch.func.vmap(
        lambda p, o: distribution(policy, p, o))(dict(stacked),
                                                 obs_NO.reshape(K, -1, obs_NO.shape[-1]))
    J = mean_KJA.shape[1]
    mean_NA = mean_KJA.reshape(K * J, -1)
    return mean_NA, log_std_KA[:, None, :].expand(K, J, -1).reshape(K * J, -1)


class ActorCriticAgent:
    """An actor-critic over trials (RL²'s recurrent one, or a Markov one). Each step it
    records the policy's input, its hidden state before the step and the critic's value
    (extras "inputs", "state", "value"), which a PPO update replays.

    It samples its actions; with greedy=True it takes the most likely choice (Discrete)
    or the Gaussian's mean (Box) instead: the deterministic policy an MDP's optimum is.
    """

    def __init__(self, policy: ActorCritic, *, greedy: bool = False) -> None:
        if not isinstance(greedy, bool):
            raise ValueError(f"ActorCriticAgent: greedy must be true or false, got {greedy!r}")
        self.policy, self.greedy = policy, greedy
        self.dtype = next(policy.parameters()).dtype
        self.discrete = policy.discrete
        self.generator = torch.Generator()

    def begin(self, trials: Trials, seed: int) -> None:
        num_trials = trials.num_trials
        self.generator.manual_seed(seed)
        self.task_NP = trials.task_NP
        self.hidden_NH = self.policy.initial_state(num_trials)
        self.prev_act = (torch.zeros(num_trials, dtype=torch.long) if self.policy.discrete
                         else torch.zeros(num_trials, self.policy.action_size))
        self.prev_rew_N = torch.zeros(num_trials)
        self.new_episode_N = torch.ones(num_trials)

    def act(self, obs_NO: torch.Tensor) -> Action:
        policy = self.policy
        x_NI = policy.inputs(obs_NO, self.prev_act, self.prev_rew_N, self.new_episode_N,
                             self.task_NP)
        state_NH = self.hidden_NH
        head_1NA, value_1N, self.hidden_NH = policy(x_NI[None], state_NH)
        act = (policy.most_likely(head_1NA[0]) if self.greedy
               else policy.sample(head_1NA[0], self.generator))
        return Action(act, policy.log_prob(head_1NA[0], act),
                      {"inputs": x_NI, "state": state_NH, "value": value_1N[0]})

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        self.prev_act = act
        self.prev_rew_N = torch.as_tensor(rew_N, dtype=torch.float32)
        self.new_episode_N = torch.as_tensor(ended_N, dtype=torch.float32)


class EnsembleAgent:
    """M Markov actor-critics (an Ensemble, stacked weights) evaluated together, one
    vmapped forward pass per step. Every member's value is recorded (extras "values",
    [N, M]), for predictions from the ensemble's disagreement.

    mode "mean": act with the ensemble's mean distribution (Discrete: the mean of the
    members' probabilities; Box: the mean of their Gaussian means, with the members' mean
    standard deviation). mode "member": trial n acts with member n % M throughout. mode
    "draw": each trial acts with one member throughout, drawn uniformly when it starts.
    mode "max" (Discrete only): act with pi_max(a|s), proportional to the largest of the
    members' probabilities of a (`max_combined_log_probs`), LEEP's test-time policy.
    Each step also records every member's logits (extras "logits", [N, M, A], Discrete),
    and what a PPO update of the acting members replays: "inputs", an empty "state", and
    "value" (the acting member's in modes "member" and "draw", else the members' mean).
    """

    MODES = ("mean", "member", "draw", "max")

    def __init__(self, ensemble: Ensemble, *, mode: str = "mean") -> None:
        if mode not in self.MODES:
            raise ValueError(f"EnsembleAgent: mode must be one of {list(self.MODES)}, got "
                             f"{mode!r}")
        if ensemble.module.memory:
            raise ValueError("EnsembleAgent runs Markov actor-critics (no memory)")
        if mode == "max" and not ensemble.module.discrete:
            raise ValueError("EnsembleAgent: mode 'max' needs Discrete choices")
        self.ensemble, self.mode = ensemble, mode
        self.discrete = ensemble.module.discrete
        self.dtype = ensemble.stacked[0].dtype
        self.generator = torch.Generator()

    def begin(self, trials: Trials, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.task_NP = trials.task_NP
        self.member_N = (torch.randint(self.ensemble.members, (trials.num_trials,),
                                       generator=self.generator) if self.mode == "draw"
                         else torch.arange(trials.num_trials) % self.ensemble.members)

    def act(self, obs_NO: torch.Tensor) -> Action:
        module, N = self.ensemble.module, obs_NO.shape[0]
        x_NI = module.inputs(obs_NO, None, None, None, self.task_NP)
        head_M1NA, value_M1N, _ = self.ensemble(x_NI[None], x_NI.new_zeros(N, 0))
        head_MNA, value_MN = head_M1NA[:, 0], value_M1N[:, 0]
        rows = torch.arange(N)
        extras = {"values": value_MN.T, "inputs": x_NI, "state": x_NI.new_zeros(N, 0),
                  "value": (value_MN[self.member_N, rows] if self.mode in ("member", "draw")
                            else value_MN.mean(0))}
        if self.discrete:
            probs_MNA = torch.softmax(head_MNA, -1)
            if self.mode == "max":
                probs_NA = max_combined_log_probs(head_MNA).exp()
            elif self.mode == "mean":
                probs_NA = probs_MNA.mean(0)
            else:  # one member per trial
                probs_NA = probs_MNA[self.member_N, rows]
            act = torch.multinomial(probs_NA, 1, generator=self.generator)[:, 0]
            logp_N = torch.log(probs_NA[rows, act])
            extras["logits"] = head_MNA.transpose(0, 1)
        else:
            log_std_MA = self.ensemble.params()["log_std"]
            if self.mode == "mean":
                mean_NA = head_MNA.mean(0)
                log_std_NA = log_std_MA.exp().mean(0).log().expand_as(mean_NA)
            else:
                mean_NA, log_std_NA = head_MNA[self.member_N, rows], log_std_MA[self.member_N]
            act = sample_action(mean_NA, log_std_NA, self.generator)
            logp_N = log_prob(mean_NA, log_std_NA, act)
        return Action(act, logp_N, extras)

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        pass


class QAgent:
    """Greedy, or epsilon-greedy, on the Q-values of M Q-networks held in an Ensemble; each
    maps observations [N, O] to Q-values [N, A] of the A Discrete choices.

    member: which Q-values it acts on. An index m: member m's. "mean": the members' mean
    Q-values. "draw": each episode acts with one member, drawn uniformly when the episode
    starts (Bootstrapped DQN's exploration, Osband et al. 2016). With probability `epsilon`
    a step takes a uniformly random choice instead.

    blocker: optionally, a network mapping observations [N, O] to logits [N, A] of the
    probability that a choice ends in a catastrophe at the next step. Choices with a
    probability above `threshold` are blocked (`allowed_choices`): the agent takes the best
    allowed choice by Q, and its random steps draw among the allowed choices.

    Each step records every member's state value, its largest Q-value over the choices
    (extras "values", [N, M]), for predictions from the ensemble's disagreement.
    """

    def __init__(self, ensemble: Ensemble, *, member: int | str = "mean",
                 epsilon: float = 0.0, blocker: nn.Module | None = None,
                 threshold: float = 0.5) -> None:
        if not (member in ("mean", "draw") or (isinstance(member, int)
                                                and not isinstance(member, bool)
                                                and 0 <= member < ensemble.members)):
            raise ValueError(f"QAgent: member must be 'mean', 'draw' or an index in "
                             f"[0, {ensemble.members}), got {member!r}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"QAgent: epsilon must be in [0, 1], got {epsilon!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"QAgent: threshold must be in [0, 1], got {threshold!r}")
        self.ensemble, self.member, self.epsilon = ensemble, member, float(epsilon)
        self.blocker, self.threshold = blocker, float(threshold)
        self.dtype = ensemble.stacked[0].dtype
        self.discrete = True
        self.generator = torch.Generator()

    def begin(self, trials: Trials, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.member_N = torch.randint(self.ensemble.members, (trials.num_trials,),
                                      generator=self.generator)

    def q_values(self, obs_NO: torch.Tensor, q_MNA: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """The Q-values [N, A] the agent acts on; q_MNA, every member's Q-values on obs_NO,
        if already computed."""
        if isinstance(self.member, int):
            return functional_call(self.ensemble.module, self.ensemble.member(self.member),
                                   (obs_NO,))
        if q_MNA is None:
            q_MNA = self.ensemble(obs_NO)
        if self.member == "mean":
            return q_MNA.mean(0)
        return q_MNA[self.member_N, torch.arange(obs_NO.shape[0])]

    def act(self, obs_NO: torch.Tensor) -> Action:
        q_MNA = self.ensemble(obs_NO)
        q_NA = self.q_values(obs_NO, q_MNA)
        allowed_NA = torch.ones_like(q_NA, dtype=torch.bool)
        if self.blocker is not None:
            allowed_NA = allowed_choices(torch.sigmoid(self.blocker(obs_NO)), self.threshold)
        act_N = q_NA.masked_fill(~allowed_NA, -torch.inf).argmax(-1)
        if self.epsilon > 0:
            explore_N = torch.rand(act_N.shape, generator=self.generator) < self.epsilon
            random_N = torch.multinomial(allowed_NA.double(), 1, generator=self.generator)[:, 0]
            act_N = torch.where(explore_N, random_N, act_N)
        return Action(act_N, extras={"values": q_MNA.amax(-1).T})

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        if self.member == "draw":  # a new episode, a new member
            drawn_N = torch.randint(self.ensemble.members, self.member_N.shape,
                                    generator=self.generator)
            self.member_N = torch.where(torch.as_tensor(ended_N), drawn_N, self.member_N)


def allowed_choices(risk_NA: torch.Tensor, threshold: float) -> torch.Tensor:
    """The choices a blocker lets through, [N, A] bool: those whose probability of a
    catastrophe `risk_NA` is at most `threshold`; where it blocks every choice, the least
    risky ones (all of them that tie)."""
    allowed_NA = risk_NA <= threshold
    least_NA = risk_NA == risk_NA.min(-1, keepdim=True).values
    return torch.where(allowed_NA.any(-1, keepdim=True), allowed_NA, least_NA)


class UniformAgent:
    """Uniform random actions: choices, or actions uniform in [-1, 1] (the env's box)."""

    dtype = torch.float64

    def __init__(self, spec: EnvSpec) -> None:
        self.spec = spec
        self.discrete = spec.discrete
        self.generator = torch.Generator()

    def begin(self, trials: Trials, seed: int) -> None:
        self.generator.manual_seed(seed)

    def act(self, obs_NO: torch.Tensor) -> Action:
        N, size = obs_NO.shape[0], self.spec.action_size
        if self.spec.discrete:
            return Action(torch.randint(0, size, (N,), generator=self.generator))
        return Action(2 * torch.rand(N, size, generator=self.generator) - 1)

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        pass
