"""The collector: the one env loop. It runs an agent in a family's batched env and
returns trials as a Batch; it never computes a loss.

Every learner samples through it: MAML's adaptation episodes (K tasks x J episodes, one
episode per simulation), RL²'s trials (E episodes in a row, memory carried across
them), the Markov baselines, the counting references and `fewshot rollouts`. What
differs between them is the `Agent`: how it turns an observation into an action, and
what it remembers.

Actions: for a Box action space the agent acts in normalised units, a in [-1, 1]
mapped linearly onto the env's box, low + (a + 1) (high - low) / 2, and the env clips
what falls outside (the locomotion boxes are [-1, 1], so there the map is the identity;
point-nav's [-0.1, 0.1] needs it, as in the MAML code, or an initial std of 1 would be
ten times the largest step). For a Discrete space the agent's actions are choices.
Batches hold the agent's own actions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from fewshot.checks import check_count
from fewshot.collect.batch import Batch
from fewshot.collect.spec import EnvSpec, env_spec
from tasks.resources import refuse_unless_fits


@dataclass(frozen=True)
class Trials:
    """What an agent is told when N trials begin."""

    num_tasks: int          # K
    trials_per_task: int    # J; trial n runs task n // J
    task_NP: torch.Tensor   # each trial's task parameters, float64 (only an oracle may look)

    @property
    def num_trials(self) -> int:
        return self.num_tasks * self.trials_per_task


@dataclass
class Action:
    """What an agent returns for one step of N simulations."""

    act: torch.Tensor                 # [N] choices or [N, A] actions in policy units
    logp_N: torch.Tensor | None = None  # log-prob under the acting policy, if it has one
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # recorded as [T, N, ...]


class Agent(Protocol):
    """What the collector runs. `begin` starts N trials; then, every step, `act` on the
    observations and `observe` what happened."""

    dtype: torch.dtype
    """The dtype the agent wants its observations in."""
    discrete: bool
    """Whether it acts with choices (a Discrete action space) or with vectors (Box)."""

    def begin(self, trials: Trials, seed: int) -> None:
        """Start N trials; `seed` fixes the agent's own randomness."""
        ...

    def act(self, obs_NO: torch.Tensor) -> Action:
        """Actions for the N simulations (called under torch.no_grad)."""
        ...

    def observe(self, act: torch.Tensor, rew_N: np.ndarray, ended_N: np.ndarray,
                valid_N: np.ndarray) -> None:
        """The step's rewards; ended_N marks episodes that ended at this step; valid_N the
        simulations whose trial was still running when it was taken."""
        ...


BYTES_PER_UNIT_AND_STEP = 64
"""Memory an update keeps per env-step for each output unit of a network: activations,
their gradients and, for MAML-TRPO, the graphs of its Fisher-vector products (measured
about 52 bytes on point-nav)."""


def activation_width(network: torch.nn.Module) -> int:
    """Output units per sample of a network's weight matrices (rows of every 2-D
    parameter: a Linear layer's out_features, a GRU's 3 x hidden for its gates)."""
    return sum(p.shape[0] for p in network.parameters() if p.dim() == 2)


class Collector:
    """Runs agents in `num_envs` simulations of a family.

    Args:
        family: a tasks.TaskFamily.
        num_envs: N, the number of simulations (trials collected at once).
        horizon: steps per episode (default: the family's).
        nthread: MuJoCo threads (default: all available cores; MuJoCo families only).
    """

    def __init__(self, *, family: Any, num_envs: int, horizon: int | None = None,
                 nthread: int | None = None) -> None:
        check_count("Collector", num_envs=num_envs)
        self.family = family
        self.num_envs = int(num_envs)
        self.spec: EnvSpec = env_spec(family)
        self.horizon = int(horizon or family.horizon)
        self.refuse_unless_fits()
        options: dict[str, Any] = {"autoreset_mode": "disabled", "horizon": horizon}
        if nthread is not None:  # only the MuJoCo families take it
            options["nthread"] = nthread
        self.envs = family.make_vec([family.default_task] * self.num_envs, **options)
        self.horizon = self.envs.horizon
        if not self.spec.discrete:
            self.action_center = torch.as_tensor(self.spec.action_center)
            self.action_half_range = torch.as_tensor(self.spec.action_half_range)
        self.env_steps = 0         # env-steps taken over the collector's life
        self.sample_seconds = 0.0  # wall time spent in collect()

    def refuse_unless_fits(self, *, episodes_per_trial: int = 1, batches: int = 1,
                           network: torch.nn.Module | None = None) -> None:
        """Raise TooLargeError unless `batches` batches of trials of `episodes_per_trial`
        episodes fit in memory, with `network` learning from them. A stored env-step
        takes its observation, action, reward, log-prob and flags (twice, as steps are
        stacked, and twice again for the update's working memory), plus what the update
        keeps per step for each output unit of the network's weight matrices. Trainers
        call this when built, so a run that cannot fit fails before it starts."""
        per_step = 4 * (4 * (self.spec.obs_size + self.spec.action_size) + 32)
        batch = "a batch" if batches == 1 else f"{batches} batches"
        what = (f"{batch} of {self.num_envs} simulations x {episodes_per_trial} episode(s) "
                f"x horizon {self.horizon}")
        if network is not None:
            width = activation_width(network)
            per_step += BYTES_PER_UNIT_AND_STEP * width
            what += f", learnt by a network of {width} units"
        steps = self.num_envs * self.horizon * episodes_per_trial * batches
        refuse_unless_fits(what, steps * per_step)

    def collect(self, agent: Agent, tasks: Sequence[Any], *, seed: int,
                trials_per_task: int = 1, episodes_per_trial: int = 1) -> Batch:
        """J = trials_per_task trials of each task, each E = episodes_per_trial episodes.

        `seed` fixes the envs' reset noise and the agent's randomness, so a batch is a
        pure function of (agent, tasks, seed).
        """
        started = time.perf_counter()
        check_count("Collector.collect", trials_per_task=trials_per_task,
                    episodes_per_trial=episodes_per_trial)
        J, E = int(trials_per_task), int(episodes_per_trial)
        self.refuse_unless_fits(episodes_per_trial=E)
        if len(tasks) * J != self.num_envs:
            raise ValueError(f"Collector.collect: {len(tasks)} tasks x {J} trials each need "
                             f"{len(tasks) * J} simulations; this collector has "
                             f"{self.num_envs}")
        if agent.discrete != self.spec.discrete:
            kinds = {True: "discrete choices", False: "continuous actions"}
            raise ValueError(f"Collector.collect: the agent acts with {kinds[agent.discrete]}; "
                             f"family {self.family.name!r} takes {kinds[self.spec.discrete]}")
        trial_tasks = [task for task in tasks for _ in range(J)]
        self.envs.set_tasks(trial_tasks)
        obs_NO, _ = self.envs.reset(seed=seed)
        task_NP = torch.as_tensor(np.stack(list(self.family.task_arrays(trial_tasks).values()),
                                           axis=1), dtype=torch.float64)
        agent.begin(Trials(num_tasks=len(tasks), trials_per_task=J, task_NP=task_NP), seed)
        running_N = np.ones(self.num_envs, dtype=bool)
        episode_N = np.zeros(self.num_envs, dtype=np.int64)
        steps: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "logp", "term",
                                                  "trunc", "diverged", "valid", "episode")}
        outcomes: dict[str, list] = {name: [] for name in self.family.outcomes}
        extras: dict[str, list] = {}
        for _ in range(E * self.horizon):
            obs = torch.as_tensor(obs_NO, dtype=agent.dtype)
            with torch.no_grad():
                action = agent.act(obs)
            obs_NO, rew_N, term_N, trunc_N, info = self.envs.step(self.env_actions(action.act))
            self.env_steps += int(running_N.sum())
            for key, value in (("obs", obs), ("act", action.act), ("rew", rew_N),
                               ("term", term_N), ("trunc", trunc_N),
                               ("diverged", info["diverged"]), ("valid", running_N.copy()),
                               ("episode", episode_N.copy())):
                steps[key].append(torch.as_tensor(value))
            if action.logp_N is not None:
                steps["logp"].append(action.logp_N)
            for name, flags in outcomes.items():
                flags.append(torch.as_tensor(info[f"outcome_{name}"]))
            for name, value in action.extras.items():
                extras.setdefault(name, []).append(value)
            ended_N = (term_N | trunc_N) & running_N
            agent.observe(action.act, rew_N, ended_N, running_N)
            episode_N += ended_N
            running_N &= episode_N < E
            if (ended_N & ~running_N).any():  # finished trials take no more physics
                self.envs.set_idle(~running_N)
            restart_N = ended_N & running_N
            if restart_N.any():
                obs_NO, _ = self.envs.reset(options={"reset_mask": restart_N})
            if not running_N.any():
                break
        stack = {k: torch.stack(v) if v else None for k, v in steps.items()}
        self.sample_seconds += time.perf_counter() - started
        return Batch(obs_TNO=stack["obs"], act_TN=stack["act"], rew_TN=stack["rew"].float(),
                     logp_TN=stack["logp"], terminated_TN=stack["term"],
                     truncated_TN=stack["trunc"], diverged_TN=stack["diverged"],
                     valid_TN=stack["valid"], episode_TN=stack["episode"],
                     outcomes={k: torch.stack(v) for k, v in outcomes.items()},
                     extras={k: torch.stack(v) for k, v in extras.items()},
                     tasks=list(tasks), trials_per_task=J, episodes_per_trial=E)

    def env_actions(self, act: torch.Tensor) -> np.ndarray:
        """The agent's actions as the env takes them: choices as they are, normalised
        actions mapped onto the env's action box."""
        if self.spec.discrete:
            return act.numpy()
        return (self.action_center + self.action_half_range * act).numpy()

