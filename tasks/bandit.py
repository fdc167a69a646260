"""bandit: k-armed Bernoulli bandits, the classic check that a learner adapts from memory.

Each episode is one pull: the action is an arm index, the reward is 1 with the arm's
probability and 0 otherwise, and the episode ends (terminated). A learner meets a task
over a trial of n episodes (n pulls of the same arms), so all it can learn about the
task comes from the pulls it has made. The observation carries nothing (a constant 0).

Train and test-id: every arm's mean in [0.1, 0.9). Test-ood: at least one arm outside
it, in [0, 0.1) or [0.9, 1) (the extreme arms that Beta(0.5, 0.5) favours). Evaluating
with more pulls than trained on is the other OOD axis; it is the harness's K.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tasks.family import TaskFamily
from tasks.regions import Param, box, shell
from tasks.simple import TaskEnv, check_choice, env_factories
from tasks.vector import SimStep

ARMS = 5
ARM_NAMES = tuple(f"arm_{i}" for i in range(ARMS))
TRAIN_RANGE = (0.1, 0.9)

OBSERVATION_SPACE = spaces.Box(-np.inf, np.inf, (1,), np.float64)
ACTION_SPACE = spaces.Discrete(ARMS)


class BanditSim:
    """N bandits pulled with array operations; each draws from its own generator."""

    single_observation_space = OBSERVATION_SPACE
    single_action_space = ACTION_SPACE

    def __init__(self, num_envs: int) -> None:
        self.means_NK = np.zeros((num_envs, ARMS))
        self.rngs: list[np.random.Generator | None] = [None] * num_envs

    def set_tasks(self, task: dict[str, np.ndarray]) -> None:
        self.means_NK = np.stack([task[name] for name in ARM_NAMES], axis=1)

    def reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        for i, rng in zip(ids, rngs, strict=True):
            self.rngs[i] = rng
        return np.zeros((len(ids), 1))

    def step(self, action_N: np.ndarray, active_N: np.ndarray) -> SimStep:
        n = len(action_N)
        uniform_N = np.array([self.rngs[i].random() if active_N[i] else 1.0
                              for i in range(n)])
        mean_N = self.means_NK[np.arange(n), action_N]
        reward_N = (uniform_N < mean_N).astype(float)
        return SimStep(obs_NO=np.zeros((n, 1)), reward_N=reward_N, terms={"pull": reward_N},
                       terminated_N=np.ones(n, dtype=bool),
                       diverged_N=np.zeros(n, dtype=bool))


class BanditEnv(TaskEnv):
    """The single reference env, written with scalars, independently of BanditSim."""

    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE

    def first_observation(self) -> np.ndarray:
        return np.zeros(1)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.check_ready()
        arm = check_choice(action, ARMS, "arm")
        reward = float(self.np_random.random() < getattr(self.task, ARM_NAMES[arm]))
        info = {"diverged": False, "reward_pull": reward}
        return np.zeros(1), reward, True, False, info


make_vec, make_env = env_factories(BanditSim, BanditEnv)


def bandit() -> TaskFamily:
    train = {name: TRAIN_RANGE for name in ARM_NAMES}
    return TaskFamily(
        name="bandit",
        params=[Param(name, 0.0, 1.0, doc=f"mean reward of arm {i}")
                for i, name in enumerate(ARM_NAMES)],
        splits={"train": box(**train),
                "test-ood": shell({name: (0.0, 1.0) for name in ARM_NAMES}, train)},
        horizon=1, make_vec=make_vec, make_env=make_env,
        doc=f"{ARMS}-armed Bernoulli bandit, one pull per episode; ID means in "
            f"[{TRAIN_RANGE[0]}, {TRAIN_RANGE[1]}), OOD an arm outside")
