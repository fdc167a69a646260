"""The stepping loops throughput.py times: each call advances all N envs by one step
(the collector's loop: by one episode). Configurations as in throughput.py's docstring."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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


def policy_action(policy: nn.Module, obs: np.ndarray) -> np.ndarray:
    return policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()


@contextlib.contextmanager
def quick_gil_handoff(seconds: float = 0.0005) -> Iterator[None]:
    """A short switch interval, so the GIL changes hands soon after a step returns."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def random_actions(low: np.ndarray, high: np.ndarray, num_envs: int, dtype: type,
                   ) -> np.ndarray:
    """ACTION_POOL random action batches [num_envs, A], uniform in [low, high]."""
    rng = np.random.default_rng(0)
    return rng.uniform(low, high, size=(ACTION_POOL, num_envs, len(low))).astype(dtype)


class PolicyLoop:
    """A vector env stepped with the MLP policy's actions."""

    def __init__(self, env: gymnasium.vector.VectorEnv, torch_threads: int = 1,
                 seeded_on_reset: bool = True) -> None:
        self.env = env
        self.torch_threads = torch_threads
        self.policy = mlp_policy(env.single_observation_space.shape[0],
                                 env.single_action_space.shape[0])
        self.obs, _ = env.reset(seed=0) if seeded_on_reset else env.reset()

    def __call__(self) -> np.ndarray:
        """One step; returns the actions taken."""
        action = policy_action(self.policy, self.obs)
        self.obs = self.env.step(action)[0]
        return action

    def close(self) -> None:
        self.env.close()


class OverlappedPolicyLoop:
    """Two batched envs of N/2 simulations each, stepped with the MLP policy's actions so
    that one half's physics runs while the policy acts on the other half: MuJoCo's batch
    releases the GIL while it steps, so a worker thread steps one half as the main thread
    computes the other's actions. Each call advances both halves by one step (N
    env-steps). The policy of half A for the next call is computed while half B steps."""

    torch_threads = 1

    def __init__(self, halves: list[gymnasium.vector.VectorEnv]) -> None:
        self.envs = halves
        env = halves[0]
        self.policy = mlp_policy(env.single_observation_space.shape[0],
                                 env.single_action_space.shape[0])
        self.obs = [half.reset(seed=0)[0] for half in halves]
        self.worker = ThreadPoolExecutor(max_workers=1)
        self.next_action = None

    def __call__(self) -> None:
        with quick_gil_handoff(), torch.no_grad():  # the policy runs on this thread only
            action_a = self.next_action if self.next_action is not None \
                else policy_action(self.policy, self.obs[0])
            stepping = self.worker.submit(self.envs[0].step, action_a)
            action_b = policy_action(self.policy, self.obs[1])
            self.obs[0] = stepping.result()[0]
            stepping = self.worker.submit(self.envs[1].step, action_b)
            self.next_action = policy_action(self.policy, self.obs[0])
            self.obs[1] = stepping.result()[0]

    def close(self) -> None:
        self.worker.shutdown()
        for half in self.envs:
            half.close()


def recorded_policy_actions(env: gymnasium.vector.VectorEnv) -> np.ndarray:
    """ACTION_POOL batches of the MLP policy's actions along a rollout of env."""
    policy_loop = PolicyLoop(env)
    with torch.no_grad():
        return np.stack([policy_loop() for _ in range(ACTION_POOL)])


class CollectorLoop:
    """fewshot's collector with a Gaussian MLP agent: one call collects one whole episode
    (the family's horizon) in every simulation, so its steps are spread over an episode
    as the other loops' are (a robot just reset moves differently, and its physics costs
    differently, from one mid-episode). The agent's mean is the MLP policy of the other
    loops, weights included, and its standard deviation e^-5: it samples, scores and
    records as a learner does, and moves the robot as (a) does (noisier actions would
    make cheaper physics)."""

    torch_threads = 1
    horizon = None  # the family's
    min_calls = 1   # a call is a whole episode

    def __init__(self, family: tasks.TaskFamily, task_list: list) -> None:
        self.collector = Collector(family=family, num_envs=len(task_list),
                                   horizon=self.horizon)
        spec = self.collector.spec
        self.policy = GaussianMLP(obs_size=spec.obs_size, action_size=spec.action_size,
                                  hidden_sizes=(64, 64), init_log_std=-5.0)
        self.policy.mean.load_state_dict(mlp_policy(spec.obs_size,
                                                    spec.action_size).state_dict())
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

    def __init__(self, env: gymnasium.vector.VectorEnv, actions: np.ndarray,
                 seeded_on_reset: bool = True) -> None:
        self.env = env
        self.actions = actions
        self.calls = 0
        env.reset(seed=0) if seeded_on_reset else env.reset()

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


class SplitPolicyLoop:
    """Two batched envs of N/2 simulations, each physics on one native thread, each run by
    its own policy loop on its own Python thread: while one half's physics runs (GIL
    released), the other half's policy and env bookkeeping can. Each call advances both
    halves by `steps_per_call` steps, so threads meet rarely."""

    torch_threads = 1
    steps_per_call = 10

    def __init__(self, halves: list[gymnasium.vector.VectorEnv]) -> None:
        self.loops = [PolicyLoop(half) for half in halves]
        self.workers = ThreadPoolExecutor(max_workers=len(halves))
        self.env_steps = 0

    def run_half(self, loop: PolicyLoop) -> None:
        with torch.no_grad():
            for _ in range(self.steps_per_call):
                loop()

    def __call__(self) -> None:
        with quick_gil_handoff():
            list(self.workers.map(self.run_half, self.loops))
        self.env_steps += self.steps_per_call * sum(loop.env.num_envs for loop in self.loops)

    def close(self) -> None:
        self.workers.shutdown()
        for loop in self.loops:
            loop.close()


class EnvpoolPolicyLoop(PolicyLoop):
    """envpool's gymnasium-API env (synchronous: every env each step), MLP policy."""

    def __init__(self, gym_id: str, num_envs: int) -> None:
        super().__init__(envpool_env(gym_id, num_envs), seeded_on_reset=False)


class EnvpoolFixedActionLoop(FixedActionLoop):
    """envpool's env stepped with precomputed actions, cycled."""

    def __init__(self, gym_id: str, actions: np.ndarray) -> None:
        super().__init__(envpool_env(gym_id, actions.shape[1]), actions,
                         seeded_on_reset=False)


def envpool_env(gym_id: str, num_envs: int):
    """envpool (a benchmark-only extra: pip install -e '.[bench]') on every core, seeded
    when made (its reset takes no seed)."""
    import envpool  # imported here: fewshot never needs it
    return envpool.make_gymnasium(gym_id, num_envs=num_envs,
                                  num_threads=available_cores(), seed=0)


def envpool_available() -> bool:
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


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
    if num_envs % 2 == 0:
        half = num_envs // 2

        def halves(**options) -> list[gymnasium.vector.VectorEnv]:
            """Two batched envs of the first and second half of the tasks, seeded as one."""
            return [family.make_vec(task_list[:half], seed=0, **options),
                    family.make_vec(task_list[half:], seed=half, **options)]

        loops["a-overlap"] = OverlappedPolicyLoop(halves())
        loops["a-split"] = SplitPolicyLoop(halves(nthread=1))
    if envpool_available():
        loops["f"] = EnvpoolPolicyLoop(gym_id, num_envs)
        loops["f-random"] = EnvpoolFixedActionLoop(gym_id, uniform)
    if threads_check is not None:
        loops["a-threads"] = PolicyLoop(batched_env(), torch_threads=threads_check)
    return loops
