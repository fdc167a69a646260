"""Settings of the ensembles of PPO policies: LEEP's (`leep:` in a run's config.yaml,
`--leep.<field>` flags), multi-task PPO's plus the ensemble's size and the weight of its
members' pull towards pi_max; and the plain ensemble's (`ensemble:`, `--ensemble.*`),
multi-task PPO's plus the size. Both are read by one trainer, through `members`,
`kl_coef` and `bootstrap` (class attributes where they are not settings)."""

from __future__ import annotations

from dataclasses import dataclass

from fewshot.algos.ppo import MarkovPPOConfig
from fewshot.checks import require


@dataclass
class LEEPConfig(MarkovPPOConfig):
    """An ensemble of Markov actor-critics, each trained by PPO on its own bootstrap
    resample of the training tasks and pulled towards the ensemble's combined policy
    pi_max. `meta_batch_size` and `episodes_per_task` are per member."""

    bootstrap = True  # each member learns on its own resample of the training levels

    members: int = 4
    """Policies in the ensemble (n)."""
    kl_coef: float = 1.0
    """Weight (alpha) of each member's KL(pi_i || pi_max) in its loss; 0 trains n
    independent PPO policies on their bootstrap resamples."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.members >= 1, "members", "an integer >= 1", self.members)
        require(self.kl_coef >= 0, "kl_coef", ">= 0", self.kl_coef)


@dataclass
class EnsembleConfig(MarkovPPOConfig):
    """An ensemble of Markov actor-critics, each trained by PPO on all the training tasks,
    independently (its own initial weights, draws of tasks and noise).
    `meta_batch_size` and `episodes_per_task` are per member."""

    bootstrap = False  # every member draws from every training task
    kl_coef = 0.0      # no pull between the members

    members: int = 5
    """Policies in the ensemble."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.members >= 1, "members", "an integer >= 1", self.members)
