"""A plugin: a task family and an algorithm of a user's own, registered from outside fewshot.

`fewshot train --import reinforce_plugin --algo reinforce --family line-nav` trains on it,
and the run folder remembers the import, so `fewshot evaluate RUN` finds both again.
(docs/extending.md walks through this file.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium import spaces

import tasks
from fewshot import registry
from fewshot.checks import require
from fewshot.collect import Collector, EnvSpec
from fewshot.collect.agents import GaussianAgent
from fewshot.eval.learner import FixedAgentLearner
from fewshot.maths.returns import discounted_returns, masked_mean
from fewshot.nn.policy import GaussianMLP, distribution, log_prob
from fewshot.runtime import derived_seed
from tasks.simple import TaskEnv, env_factories
from tasks.vector import SimStep

# The family: a point on a line walks to a goal ------------------------------------------

STEP = 0.1
OBSERVATION = spaces.Box(-np.inf, np.inf, (1,), np.float64)
ACTION = spaces.Box(-STEP, STEP, (1,), np.float32)


class LineSim:
    """N points on a line, stepped with array operations."""

    single_observation_space, single_action_space = OBSERVATION, ACTION

    def __init__(self, num_envs: int) -> None:
        self.x_N, self.goal_N = np.zeros(num_envs), np.zeros(num_envs)

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self.goal_N = task["goal"]

    def reset(self, ids: np.ndarray, rngs) -> np.ndarray:
        self.x_N[ids] = 0.0
        return self.x_N[ids, None].copy()

    def step(self, action_NA: np.ndarray, active_N: np.ndarray) -> SimStep:
        self.x_N = np.where(active_N, self.x_N + np.clip(action_NA[:, 0], -STEP, STEP),
                            self.x_N)
        distance_N = np.abs(self.x_N - self.goal_N)
        reached_N = distance_N < 0.02
        return SimStep(obs_NO=self.x_N[:, None].copy(), reward_N=-distance_N,
                       terms={"distance": -distance_N}, terminated_N=reached_N,
                       diverged_N=np.zeros_like(reached_N), outcomes={"success": reached_N})


class LineEnv(TaskEnv):
    """One point, written with scalars: the reference the batched env is checked against."""

    observation_space, action_space = OBSERVATION, ACTION

    def first_observation(self) -> np.ndarray:
        self.x = 0.0
        return np.array([self.x])

    def step(self, action):
        self.x += float(np.clip(action[0], -STEP, STEP))
        distance = abs(self.x - self.task.goal)
        info = {"diverged": False, "reward_distance": -distance,
                "outcome_success": distance < 0.02}
        return np.array([self.x]), -distance, distance < 0.02, False, info


def line_nav(*, train_goals: int = 0) -> tasks.TaskFamily:
    """Goals in [-1, 1) for training (train_goals > 0: that many fixed goals instead),
    test-ood goals in [1, 2)."""
    if train_goals < 0:
        raise ValueError(f"family 'line-nav': option train_goals must be >= 0, got "
                         f"{train_goals}")
    make_vec, make_env = env_factories(LineSim, LineEnv)
    train = (tasks.choice("goal", np.linspace(-0.9, 0.9, train_goals)) if train_goals
             else tasks.box(goal=(-1.0, 1.0)))
    return tasks.TaskFamily(
        name="line-nav", params=[tasks.Param("goal", -1.0, 2.0, doc="where the goal is")],
        splits={"train": train, "test-id": tasks.box(goal=(-1.0, 1.0)),
                "test-ood": tasks.box(goal=(1.0, 2.0))},
        horizon=30, make_vec=make_vec, make_env=make_env, outcomes=("success",),
        default_task={"goal": 0.5}, doc="a point on a line walks to its goal")


tasks.register(line_nav)


# The algorithm: multi-task REINFORCE -----------------------------------------------------

@dataclass
class ReinforceConfig:
    """Multi-task REINFORCE: a Gaussian policy, no adaptation."""

    tasks_per_iteration: int = 8
    """Training tasks sampled per iteration."""
    episodes_per_task: int = 4
    """Episodes per task per iteration."""
    hidden_sizes: list[int] = field(default_factory=lambda: [32])
    """Widths of the policy's hidden layers."""
    lr: float = 0.01
    """Adam step size."""
    gamma: float = 0.99
    """Discount factor."""

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", "> 0", self.lr)


class Reinforce:
    """The model: the policy and its optimizer."""

    def __init__(self, config: ReinforceConfig, spec: EnvSpec) -> None:
        self.policy = GaussianMLP(obs_size=spec.obs_size, action_size=spec.action_size,
                                  hidden_sizes=config.hidden_sizes)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])


class ReinforceTrainer:
    """Each iteration: sample episodes of training tasks (collect), then one policy-gradient
    step on -log pi(a|s) (G_t - mean G) (update)."""

    def __init__(self, model: Reinforce, config: ReinforceConfig,
                 context: registry.TrainContext) -> None:
        self.model, self.config, self.context = model, config, context
        self.collector = Collector(family=context.family,
                                   num_envs=config.tasks_per_iteration * config.episodes_per_task,
                                   horizon=context.horizon)
        self.env_steps = 0  # the driver restores it when a run resumes

    def collect(self, iteration: int):
        seed = self.context.seed
        task_list = self.context.family.sample(self.config.tasks_per_iteration, "train",
                                               np.random.default_rng([seed, iteration]))
        policy = self.model.policy
        batch = self.collector.collect(GaussianAgent(policy, [policy.params()]), task_list,
                                       trials_per_task=self.config.episodes_per_task,
                                       seed=derived_seed(seed, iteration))
        self.env_steps += int(batch.valid_TN.sum())  # the steps the episodes took
        return batch, {"return": batch.mean_return()}

    def update(self, batch, iteration: int) -> dict[str, float]:
        returns_TN = discounted_returns(batch.rew_TN, batch.valid_TN, self.config.gamma)
        advantage_TN = returns_TN - masked_mean(returns_TN, batch.valid_TN)
        mean, log_std = distribution(self.model.policy, self.model.policy.params(),
                                     batch.obs_TNO)
        loss = -masked_mean(log_prob(mean, log_std, batch.act_TN) * advantage_TN,
                            batch.valid_TN)
        self.model.optimizer.zero_grad()
        loss.backward()
        self.model.optimizer.step()
        return {"loss": float(loss.detach())}

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        return {"return": f"{row['return']:.2f}"}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def trained(model: Reinforce, config: ReinforceConfig, *, name: str) -> FixedAgentLearner:
    """The trained policy; it does not adapt, so its curve R(k) is flat."""
    return FixedAgentLearner(name=name, agent=GaussianAgent(model.policy,
                                                            [model.policy.params()]))


registry.register(registry.Algorithm(
    name="reinforce", config=ReinforceConfig, build=Reinforce, trainer=ReinforceTrainer,
    learners={"trained": trained}, doc="multi-task REINFORCE (a plugin)"))
