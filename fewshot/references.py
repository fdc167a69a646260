"""Reference learners: they need no training, so any run can be scored against them.

- `random`: actions N(0, 1) in the policy's normalised units (Box), or uniform choices
  (Discrete): the floor.
- `scripted-oracle`: the family's scripted oracle (`family.oracle`), told each task, with
  a little action noise: the ceiling, for families whose best behaviour is known. (Not
  to be confused with the `oracle` algorithm, multi-task PPO told the task.)
- `ucb1`, `thompson`: discrete actions only; they count each choice's rewards over a
  trial's episodes (the classic bandit references), so they adapt by counting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import tasks
from fewshot import registry
from fewshot.collect import Action, Collector, Trials, env_spec
from fewshot.eval.learner import Episodes, FixedAgentLearner, fixed_policy
from fewshot.nn.policy import sample_action

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


class CountingAgent:
    """Chooses by `rule` from each trial's counts and reward sums, which persist across
    collections (the trial's memory); each collection re-seeds its generator."""

    dtype = torch.float64
    discrete = True

    def __init__(self, rule: Rule, num_trials: int, choices: int) -> None:
        self.rule = rule
        self.counts = np.zeros((num_trials, choices))
        self.sums = np.zeros_like(self.counts)

    def begin(self, trials: Trials, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs_NO: torch.Tensor) -> Action:
        return Action(torch.as_tensor(self.rule(self.counts, self.sums, self.rng)))

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        rows, choice = np.flatnonzero(valid_N), act.numpy()
        np.add.at(self.counts, (rows, choice[rows]), 1.0)
        np.add.at(self.sums, (rows, choice[rows]), rew_N[rows])


class CountingLearner:
    """A counting reference over a Discrete action space: one episode per block."""

    def __init__(self, *, name: str, rule: Rule) -> None:
        self.name, self.rule = name, rule

    def start(self, family: Any, trial_tasks: Sequence[Any], *,
              horizon: int | None = None) -> _CountingAdaptation:
        return _CountingAdaptation(self.rule, family, list(trial_tasks), horizon)


class _CountingAdaptation:
    block = 1

    def __init__(self, rule: Rule, family: Any, trial_tasks: list[Any],
                 horizon: int | None) -> None:
        self.tasks = trial_tasks
        self.collector = Collector(family=family, num_envs=len(trial_tasks), horizon=horizon)
        self.agent = CountingAgent(rule, len(trial_tasks), env_spec(family).action_size)

    def run_block(self, count: int, seed: int) -> Episodes:
        if count != 1:
            raise ValueError(f"counting learners run one episode at a time, got {count}")
        return Episodes.from_batch(self.collector.collect(self.agent, self.tasks, seed=seed))


class RandomPolicy(nn.Module):
    """Actions N(0, 1) in the policy's normalised units, whatever the observation."""

    def __init__(self, *, action_size: int) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.zeros(action_size), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return obs.new_zeros(*obs.shape[:-1], self.log_std.shape[0]), self.log_std

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())


class ScriptedAgent:
    """A family's scripted oracle, told each trial's task. Box actions are taken in
    normalised units with Gaussian noise of std exp(log_std) (so its episodes are not all
    identical); Discrete ones as the oracle chooses. An oracle with `start` is started
    on each block's tasks and told which episodes end."""

    dtype = torch.float32

    def __init__(self, family: Any, *, log_std: float = -4.0) -> None:
        spec = env_spec(family)
        self.family, self.log_std, self.discrete = family, log_std, spec.discrete
        self.center, self.half_range = spec.action_center, spec.action_half_range
        self.generator = torch.Generator()
        self.run = None

    def begin(self, trials: Trials, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.task = {p.name: trials.task_NP[:, i].numpy()
                     for i, p in enumerate(self.family.params)}
        oracle = self.family.oracle
        self.run = oracle.start(self.task) if hasattr(oracle, "start") else None

    def act(self, obs_NO: torch.Tensor) -> Action:
        oracle = self.run if self.run is not None else self.family.oracle
        env_action = oracle(obs_NO.double().numpy(), self.task)
        if self.discrete:
            return Action(torch.as_tensor(env_action, dtype=torch.int64))
        mean_NA = torch.as_tensor((env_action - self.center) / self.half_range,
                                  dtype=self.dtype).clamp(-1.0, 1.0)
        log_std_NA = torch.full_like(mean_NA, self.log_std)
        return Action(sample_action(mean_NA, log_std_NA, self.generator))

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        if self.run is not None:
            self.run.ended(ended_N)


def random_learner(family: Any, *, name: str) -> Any:
    spec = env_spec(family)
    if spec.discrete:
        return CountingLearner(name=name, rule=uniform)
    policy = RandomPolicy(action_size=spec.action_size)
    return fixed_policy(policy, name=name)


def oracle_learner(family: Any, *, name: str) -> FixedAgentLearner:
    if family.oracle is None:
        with_one = [n for n in tasks.names() if tasks.get(n).oracle is not None]
        raise ValueError(f"family {family.name!r} declares no scripted oracle; families "
                         f"with one: {with_one}")
    return FixedAgentLearner(name=name, agent=ScriptedAgent(family))


def counting_learner(rule: Rule) -> Callable[..., CountingLearner]:
    def make(family: Any, *, name: str) -> CountingLearner:
        if not env_spec(family).discrete:
            raise ValueError(f"learner {name} needs discrete actions; family "
                             f"{family.name!r} has continuous ones")
        return CountingLearner(name=name, rule=rule)
    return make


for _reference in (
        registry.Reference("random", random_learner, "random actions: the floor"),
        registry.Reference("scripted-oracle", oracle_learner, "the family's scripted oracle, told "
                           "the task"),
        registry.Reference("ucb1", counting_learner(ucb1), "UCB1 over discrete choices"),
        registry.Reference("thompson", counting_learner(thompson),
                           "Thompson sampling over discrete (Bernoulli) choices")):
    registry.register_reference(_reference)
