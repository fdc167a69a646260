"""The meta-training driver: build tasks, envs and learner, then loop
{sample, (adapt, sample,) update, log, checkpoint}, writing everything to a run folder.
Two trainers: `MAMLTrainer` (sample, adapt, sample again, meta-update) and `PPOTrainer`
(trials of the training tasks, then PPO: RL² and the Markov baselines).

Randomness: iteration i draws its tasks, env noise and action noise from generators
seeded by (seed, i, phase), so the run's random state after i iterations is the pair
(seed, i). A resumed run therefore continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import yaml
from tqdm import tqdm

import tasks
from fewshot.advantages import with_advantages
from fewshot.checkpoint import load_checkpoint, save_checkpoint, write_manifest
from fewshot.config import MAMLConfig, PPOConfig, TrainConfig
from fewshot.maml import MAML
from fewshot.metrics import MetricsLog
from fewshot.policy import GaussianMLP
from fewshot.ppo import PPO_ALGOS, build_ppo
from fewshot.runtime import derived_seed, torch_threads
from fewshot.sampler import Batch, Sampler
from fewshot.trial_sampler import TrialSampler

CONFIG = "config.yaml"


def config_to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(values: dict) -> TrainConfig:
    values = dict(values)
    maml = MAMLConfig(**values.pop("maml", {}))
    ppo = PPOConfig(**values.pop("ppo", {}))
    return TrainConfig(**values, maml=maml, ppo=ppo)


def prepare_run_dir(out: Path, config: TrainConfig, *, resume: bool) -> TrainConfig:
    """Create the run folder, or check it for --resume; returns the config to run.

    On resume the saved config is used; only `iterations` may differ (to extend a run).
    """
    out = Path(out)
    config_path = out / CONFIG
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise FileExistsError(f"run folder {out} is not empty; pass --resume to continue "
                                  "it, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
        return config
    if not config_path.is_file():
        raise FileNotFoundError(f"--resume: {out} is not a run folder (no {CONFIG})")
    saved = config_from_dict(yaml.safe_load(config_path.read_text()))
    wanted = config_to_dict(config)
    differing = [k for k, v in config_to_dict(saved).items()
                 if k != "iterations" and wanted[k] != v]
    if differing:
        raise ValueError(f"--resume: settings {differing} differ from the run's {CONFIG}; "
                         "only iterations may change when resuming")
    return dataclasses.replace(saved, iterations=config.iterations)


class Trainer(Protocol):
    """What the training loop needs from an algorithm."""

    learner: Any   # has state_dict() and load_state_dict()
    sampler: Any   # counts env_steps

    def iteration(self, iteration: int) -> dict[str, float]:
        """One iteration (sample, update); returns its metrics row."""
        ...

    def postfix(self, row: dict[str, float]) -> dict[str, str]:
        """The returns to show in the progress bar."""
        ...


def make_trainer(config: TrainConfig) -> Trainer:
    """The algorithm's trainer; a family its sampler cannot run fails here."""
    family = tasks.get(config.family)
    if config.algo in PPO_ALGOS:
        return PPOTrainer(config, family)
    return MAMLTrainer(config, family)


def build_learner(config: TrainConfig, *, obs_size: int, action_size: int,
                  discrete: bool = False, task_size: int = 0) -> Any:
    """The learner `config` describes, with its initial weights (fixed by the seed)."""
    torch.manual_seed(derived_seed(config.seed, 0xF00D))  # initial weights only
    if config.algo in PPO_ALGOS:
        return build_ppo(config, obs_size=obs_size, action_size=action_size,
                         discrete=discrete, task_size=task_size)
    policy = GaussianMLP(obs_size=obs_size, action_size=action_size,
                         hidden_sizes=config.hidden_sizes, init_log_std=config.init_log_std,
                         activation=config.activation)
    return MAML(policy=policy, config=config.maml)


def train(config: TrainConfig, out: Path, *, resume: bool = False,
          progress: bool = True) -> Any:
    """Meta-train `config.algo` on `config.family`; returns the learner."""
    out = Path(out)
    trainer = make_trainer(config)  # before the run folder exists
    config = prepare_run_dir(out, config, resume=resume)
    torch.set_num_threads(config.torch_threads)
    start = 0
    if resume:
        state = load_checkpoint(out)
        trainer.learner.load_state_dict(state["learner"])
        start, trainer.sampler.env_steps = int(state["iteration"]), int(state["env_steps"])
        if start >= config.iterations:  # finished: leave the run folder as it is
            if progress:
                print(f"{out}: already at iteration {start} of {config.iterations}; "
                      "pass a larger --iterations to continue it", file=sys.stderr)
            return trainer.learner
    write_manifest(out, seed=config.seed, family=config.family, algo=config.algo,
                   resumed_at_iteration=start if resume else None)
    log = MetricsLog(out, start=start)
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               desc=f"{config.algo} {config.family}", disable=not progress, unit="it")
    started = time.perf_counter()
    try:
        for iteration in bar:
            row = trainer.iteration(iteration)
            elapsed = time.perf_counter() - started
            log.log({"iteration": iteration, "env_steps": trainer.sampler.env_steps, **row})
            bar.set_postfix(**trainer.postfix(row),
                            steps_per_s=f"{row['env_steps_per_s']:.0f}", elapsed=f"{elapsed:.0f}s")
            done = iteration + 1
            if done % config.checkpoint_every == 0 or done == config.iterations:
                save_checkpoint(out, {"iteration": done, "env_steps": trainer.sampler.env_steps,
                                      "learner": trainer.learner.state_dict(),
                                      "seed": config.seed})
    finally:
        log.close()
        bar.close()
    return trainer.learner


class MAMLTrainer:
    """MAML: sample K tasks' episodes, adapt, sample again, meta-update."""

    def __init__(self, config: TrainConfig, family: tasks.TaskFamily) -> None:
        self.config, self.family = config, family
        self.sampler = Sampler(family=family, num_tasks=config.meta_batch_size,
                               episodes_per_task=config.episodes_per_task,
                               horizon=config.horizon, nthread=config.nthread)
        self.learner = build_learner(config, obs_size=self.sampler.obs_size,
                                     action_size=self.sampler.action_size)

    def iteration(self, iteration: int) -> dict[str, float]:
        return meta_iteration(self.config, self.family, self.sampler, self.learner, iteration)

    def postfix(self, row: dict[str, float]) -> dict[str, str]:
        return {"pre": f"{row['return_step0']:.1f}",
                "post": f"{row[f'return_step{self.config.maml.num_inner_steps}']:.1f}"}


class PPOTrainer:
    """Trials of the training tasks, then the PPO update. RL²: one trial of
    `ppo.episodes_per_trial` episodes per task; ppo and oracle: `episodes_per_task`
    one-episode trials per task (a Markov policy gains nothing from longer trials)."""

    def __init__(self, config: TrainConfig, family: tasks.TaskFamily) -> None:
        self.config, self.family = config, family
        recurrent = config.algo == "rl2"
        self.trials_per_task = 1 if recurrent else config.episodes_per_task
        self.sampler = TrialSampler(
            family=family, num_trials=config.meta_batch_size * self.trials_per_task,
            episodes_per_trial=config.ppo.episodes_per_trial if recurrent else 1,
            horizon=config.horizon, nthread=config.nthread)
        self.learner = build_learner(config, obs_size=self.sampler.obs_size,
                                     action_size=self.sampler.action_size,
                                     discrete=self.sampler.discrete,
                                     task_size=self.sampler.task_size)

    def iteration(self, iteration: int) -> dict[str, float]:
        config = self.config
        rng = np.random.default_rng([config.seed, iteration])
        task_list = [task for task in self.family.sample(config.meta_batch_size, "train", rng)
                     for _ in range(self.trials_per_task)]
        steps_before, seconds_before = self.sampler.env_steps, self.sampler.sample_seconds
        batch = self.sampler.sample(self.learner.policy, task_list,
                                    seed=derived_seed(config.seed, iteration, 0))
        sample_seconds = self.sampler.sample_seconds - seconds_before
        generator = torch.Generator().manual_seed(derived_seed(config.seed, iteration, 1))
        started = time.perf_counter()
        with torch_threads(config.update_threads):
            stats = self.learner.update(batch, generator)
        returns_E = batch.episode_returns().mean(1)
        last = len(returns_E) - 1
        row = {"return_episode0": float(returns_E[0])}
        if last > 0:
            row[f"return_episode{last}"] = float(returns_E[-1])
        return {**row, "trial_return": float(returns_E.sum()),
                "env_steps_per_s": (self.sampler.env_steps - steps_before) / sample_seconds,
                "sample_seconds": sample_seconds,
                "update_seconds": time.perf_counter() - started, **stats}

    def postfix(self, row: dict[str, float]) -> dict[str, str]:
        last = [k for k in row if k.startswith("return_episode")][-1]
        return {"first": f"{row['return_episode0']:.2f}", "last": f"{row[last]:.2f}"}


def adaptation_batches(learner: MAML, sampler: Sampler, task_list: list, *,
                       num_steps: int, seeds: list[int], gamma: float, gae_lambda: float,
                       normalize_advantages: bool,
                       step_scales: Sequence[float] | None = None) -> list[Batch]:
    """Sample with the meta-parameters, adapt, sample again, ... `num_steps` times.

    Returns num_steps + 1 batches with advantages: batch i was sampled after i inner
    steps. seeds[i] fixes batch i's env and action noise. `step_scales[i]` multiplies
    the step size of inner step i (default 1).
    """
    params = [learner.policy.params()] * len(task_list)
    batches: list[Batch] = []
    for phase in range(num_steps + 1):
        batch = sampler.sample(learner.policy, params, task_list, seed=seeds[phase])
        batches.append(with_advantages(batch, gamma=gamma, gae_lambda=gae_lambda,
                                       normalize_advantages=normalize_advantages))
        if phase < num_steps:
            params = learner.adapt_tasks(batches, step_scales=step_scales)
    return batches


def meta_iteration(config: TrainConfig, family: tasks.TaskFamily, sampler: Sampler,
                   learner: MAML, iteration: int) -> dict[str, float]:
    """One meta-iteration of MAML; returns its metrics row."""
    rng = np.random.default_rng([config.seed, iteration])
    task_list = family.sample(config.meta_batch_size, "train", rng)
    steps = config.maml.num_inner_steps
    steps_before, seconds_before = sampler.env_steps, sampler.sample_seconds
    batches = adaptation_batches(
        learner, sampler, task_list, num_steps=steps,
        seeds=[derived_seed(config.seed, iteration, phase) for phase in range(steps + 1)],
        gamma=config.gamma, gae_lambda=config.gae_lambda,
        normalize_advantages=config.normalize_advantages)
    sample_seconds = sampler.sample_seconds - seconds_before
    t = time.perf_counter()
    with torch_threads(config.update_threads):
        stats = learner.meta_update(batches[:-1], batches[-1])
    update_seconds = time.perf_counter() - t
    row = {f"return_step{i}": b.mean_return() for i, b in enumerate(batches)}
    row.update({"env_steps_per_s": (sampler.env_steps - steps_before) / sample_seconds,
                "sample_seconds": sample_seconds, "update_seconds": update_seconds,
                "policy_std": float(learner.policy.log_std.detach().exp().mean())})
    row.update(stats)
    return row
