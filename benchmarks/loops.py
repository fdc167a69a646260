"""The stepping loops throughput.py times: each call advances all N envs by one step
(the collector's loop: by one episode). Configurations as in throughput.py's docstring."""

from __future__ import annotations

import gymnasium
import mujoco.batch
import numpy as np
import torch
from torch import nn

import tasks
from fewshot.collect import Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.nn.policy import GaussianMLP
from tasks.locomotion.batched import available_cores
from tasks.locomotion.robots import ANT, CHEETAH, Robot, quiet_mujoco

# Per robot (the family name's first word): the robot and gymnasium's own env of it.
ROBOTS: dict[str, tuple[Robot, str]] = {"cheetah": (CHEETAH, "HalfCheetah-v5"),
                                        "ant": (ANT, "Ant-v5")}
ACTION_POOL = 64        # distinct precomputed action batches, cycled through


def mlp_policy(obs_size: int, action_size: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(obs_size, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, action_size))


def random_actions(low: np.ndarray, high: np.ndarray, num_envs: int, dtype: type,
                   ) -> np.ndarray:
    """ACTION_POOL random action batches [num_envs, A], uniform in [low, high]."""
    rng = np.random.default_rng(0)
    return rng.uniform(low, high, size=(ACTION_POOL, num_envs, len(low))).astype(dtype)


class PolicyLoop:
    """A vector env stepped with the MLP policy's actions."""

    def __init__(self, env: gymnasium.vector.VectorEnv, torch_threads: int = 1) -> None:
        self.env = env
        self.torch_threads = torch_threads
        self.policy = mlp_policy(env.single_observation_space.shape[0],
                                 env.single_action_space.shape[0])
        self.obs, _ = env.reset(seed=0)

    def __call__(self) -> np.ndarray:
        """One step; returns the actions taken."""
        action = self.policy(torch.as_tensor(self.obs, dtype=torch.float32)).numpy()
        self.obs = self.env.step(action)[0]
        return action

    def close(self) -> None:
        self.env.close()


def recorded_policy_actions(env: gymnasium.vector.VectorEnv) -> np.ndarray:
    """ACTION_POOL batches of the MLP policy's actions along a rollout of env."""
    policy_loop = PolicyLoop(env)
    with torch.no_grad():
        return np.stack([policy_loop() for _ in range(ACTION_POOL)])


class CollectorLoop:
    """fewshot's collector with a Gaussian MLP agent: one call collects one episode of
    `horizon` steps in every simulation (fewer where an episode ends earlier)."""

    torch_threads = 1
    horizon = 20

    def __init__(self, family: tasks.TaskFamily, task_list: list) -> None:
        self.collector = Collector(family=family, num_envs=len(task_list),
                                   horizon=self.horizon)
        spec = self.collector.spec
        self.policy = GaussianMLP(obs_size=spec.obs_size, action_size=spec.action_size,
                                  hidden_sizes=(64, 64))
        self.agent = GaussianAgent(self.policy, [self.policy.params()])
        self.task_list, self.calls = task_list, 0

    @property
    def env_steps(self) -> int:
        return self.collector.env_steps

    def __call__(self) -> None:
        self.collector.collect(self.agent, self.task_list, seed=self.calls)
        self.calls += 1

    def close(self) -> None:
        self.collector.envs.close()


class FixedActionLoop:
    """A vector env stepped with precomputed actions [ACTION_POOL, N, A], cycled."""

    torch_threads = 1

    def __init__(self, env: gymnasium.vector.VectorEnv, actions: np.ndarray) -> None:
        self.env = env
        self.actions = actions
        self.calls = 0
        env.reset(seed=0)

    def __call__(self) -> None:
        self.env.step(self.actions[self.calls % ACTION_POOL])
        self.calls += 1

    def close(self) -> None:
        self.env.close()


class RawMujocoLoop:
    """mujoco.batch alone: write ctrl, step frame_skip substeps; no observation, reward,
    reset or checks. Simulations start at the model's defaults and never reset.
    `actions` [ACTION_POOL, N, A] are cycled through."""

    torch_threads = 1

    def __init__(self, robot: Robot, actions: np.ndarray) -> None:
        self.batch = mujoco.batch.Batch(robot.model, nsim=actions.shape[1],
                                        nthread=available_cores())
        self.ctrl = self.batch.bind("ctrl")
        self.actions = actions.astype(np.float64)
        self.frame_skip = robot.frame_skip
        self.calls = 0

    def __call__(self) -> None:
        self.ctrl[:] = self.actions[self.calls % ACTION_POOL]
        self.batch.step(nstep=self.frame_skip)
        self.calls += 1

    def close(self) -> None:
        self.batch = None


def build_loops(family_name: str, num_envs: int, *,
                threads_check: int | None) -> dict[str, object]:
    """Every configuration's loop for one family and N, keyed as in throughput.CONFIGS;
    with `threads_check`, (a) also with that many torch threads ("a-threads")."""
    with quiet_mujoco():  # gymnasium's Ant xml draws a compiler deprecation warning per env
        return _build_loops(family_name, num_envs, threads_check)


def _build_loops(family_name: str, num_envs: int,
                 threads_check: int | None) -> dict[str, object]:
    family = tasks.get(family_name)
    robot, gym_id = ROBOTS[family_name.split("-")[0]]
    task_list = family.sample(num_envs, "train", np.random.default_rng(0))

    def batched_env() -> gymnasium.vector.VectorEnv:
        return family.make_vec(task_list, seed=0)

    reference_makers = [lambda task=task: family.make_env(task) for task in task_list]
    gymnasium_makers = [lambda: gymnasium.make(gym_id)] * num_envs
    replay_env, random_env = batched_env(), batched_env()
    space = random_env.single_action_space
    policy_actions = recorded_policy_actions(replay_env)
    uniform = random_actions(space.low, space.high, num_envs, np.float32)
    loops = {
        "a": PolicyLoop(batched_env()),
        "b": PolicyLoop(gymnasium.vector.SyncVectorEnv(reference_makers)),
        "b2": PolicyLoop(gymnasium.vector.SyncVectorEnv(gymnasium_makers)),
        "c": FixedActionLoop(replay_env, policy_actions),
        "d": RawMujocoLoop(robot, policy_actions),
        "c-random": FixedActionLoop(random_env, uniform),
        "d-random": RawMujocoLoop(robot, uniform),
        "e": CollectorLoop(family, task_list),
    }
    if threads_check is not None:
        loops["a-threads"] = PolicyLoop(batched_env(), torch_threads=threads_check)
    return loops
