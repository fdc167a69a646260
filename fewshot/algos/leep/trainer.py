"""The training iteration of the ensembles of PPO policies (leep, ensemble): every member
collects one-episode trials of `meta_batch_size` training tasks, `episodes_per_task`
each, then takes a PPO update on its own trials.

LEEP's members draw their tasks from their own bootstrap resample of the training
levels, and their PPO loss adds kl_coef x KL(pi_i || pi_max). pi_max there is the
combined policy of the members as they were when collecting (recorded by the agent at
every step), held fixed through the update: no gradient flows through it, so member i
is pulled towards the others and never pulls them. The plain ensemble's members draw
from all the training tasks and are not pulled.

Randomness: the bootstrap resamples come from derived_seed(seed, BOOTSTRAP_KEY), fixed
for the whole run (a resumed run draws them again, the same); iteration i draws member
m's tasks from default_rng([seed, i, m]), the env and action noise from
derived_seed(seed, i, 0) and member m's minibatch order from derived_seed(seed, i, 1, m).
"""

from __future__ import annotations

import numpy as np
import torch

from fewshot.algos.leep.config import EnsembleConfig, LEEPConfig
from fewshot.algos.leep.leep import PolicyEnsemble, bootstrap_resamples
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import EnsembleAgent
from fewshot.maths.distributions import max_combined_log_probs
from fewshot.registry import TrainContext
from fewshot.runtime import derived_seed

BOOTSTRAP_KEY = 7


class EnsembleTrainer:
    """Each iteration: the members' trials (collect), then their PPO updates."""

    def __init__(self, model: PolicyEnsemble, config: LEEPConfig | EnsembleConfig,
                 context: TrainContext) -> None:
        self.model, self.config, self.context = model, config, context
        family = context.family
        self.levels, self.resamples_ML = None, None
        if config.bootstrap:
            try:
                self.levels = family.finite_tasks("train")
            except ValueError as error:
                raise ValueError(f"leep bootstraps the training levels, so it needs a family "
                                 f"whose train split is a finite set of tasks: {error}"
                                 ) from error
            rng = np.random.default_rng(derived_seed(context.seed, BOOTSTRAP_KEY))
            self.resamples_ML = bootstrap_resamples(len(self.levels), config.members, rng)
        self.collector = Collector(
            family=family, num_envs=config.members * config.meta_batch_size
            * config.episodes_per_task, horizon=context.horizon, nthread=context.nthread)
        self.collector.refuse_unless_fits(episodes_per_trial=1,
                                          network=model.members[0].policy)
        self.env_steps = 0

    def member_tasks(self, iteration: int) -> list:
        """The collector's tasks, one per trial: trial n belongs to member n % M (the
        columns an EnsembleAgent in mode "member" gives it); member m's trials run
        `meta_batch_size` tasks (levels of its resample, with the bootstrap),
        `episodes_per_task` trials each."""
        cfg, seed = self.config, self.context.seed
        M, B, J = cfg.members, cfg.meta_batch_size, cfg.episodes_per_task
        drawn = []
        for m in range(M):
            rng = np.random.default_rng([seed, iteration, m])
            if self.resamples_ML is None:
                drawn.append(self.context.family.sample(B, "train", rng))
            else:
                drawn.append([self.levels[i] for i in rng.choice(self.resamples_ML[m], size=B)])
        return [drawn[n % M][(n // M) // J] for n in range(M * B * J)]

    def collect(self, iteration: int) -> tuple[Batch, dict[str, float]]:
        agent = EnsembleAgent(self.model.ensemble(), mode="member")
        batch = self.collector.collect(agent, self.member_tasks(iteration),
                                       seed=derived_seed(self.context.seed, iteration, 0))
        self.env_steps += int(batch.valid_TN.sum())
        returns_N = batch.episode_returns()[:, 0]
        M = self.config.members
        row = {"return_episode0": float(returns_N.mean())}
        for m in range(M):
            row[f"return_member{m}"] = float(returns_N[m::M].mean())
        return batch, row

    def update(self, batch: Batch, iteration: int) -> dict[str, float]:
        cfg, M = self.config, self.config.members
        sums: dict[str, float] = {}
        for m, member in enumerate(self.model.members):
            trials = batch.trials(range(m, batch.num_trials, M))
            anchor = {}
            if cfg.kl_coef > 0:
                anchor = {"anchor_logp_TNA": max_combined_log_probs(
                    trials.extras["logits"].movedim(2, 0)), "anchor_coef": cfg.kl_coef}
            generator = torch.Generator().manual_seed(
                derived_seed(self.context.seed, iteration, 1, m))
            stats = member.update(trials, generator, **anchor)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value / M
        return sums

    def progress(self, row: dict[str, float]) -> dict[str, str]:
        shown = {"return": f"{row['return_episode0']:.2f}"}
        if "anchor_kl" in row:
            shown["kl"] = f"{row['anchor_kl']:.3f}"
        return shown

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
