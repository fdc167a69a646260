"""LEEP (Ghosh et al. 2021): an approximation of the epistemic POMDP by a bootstrapped
ensemble of policies.

Training on finitely many levels leaves the agent unsure which of many environments
consistent with them it will meet; LEEP stands for that uncertainty with n policies,
policy i trained by PPO on its own bootstrap resample of the training levels, and each
pulled towards the ensemble's combined policy

    pi_max(a|s) = max_i pi_i(a|s) / sum_b max_i pi_i(b|s)

by adding alpha * KL(pi_i(.|s) || pi_max(.|s)) to its PPO loss, at the states pi_i
visits. pi_max keeps every choice that some member finds likely, so where the members
disagree (states unlike the training levels) it stays random, and where they agree it
is as sure as they are. At test time the agent acts with pi_max.

The members are n Markov actor-critics, each its own `PPO` learner (the same update as
the `ppo` algorithm, with its optimizer); `ensemble()` stacks their weights into one
`Ensemble` that runs them together when collecting and at evaluation. The plain
`ensemble` algorithm is the same model trained without the bootstrap and the pull.
"""

from __future__ import annotations

import copy

import numpy as np

from fewshot.algos.leep.config import EnsembleConfig, LEEPConfig
from fewshot.algos.ppo import PPO, markov_builder
from fewshot.collect import EnvSpec
from fewshot.nn.ensemble import Ensemble


class PolicyEnsemble:
    """n PPO learners of Markov actor-critics, and their combined policy."""

    def __init__(self, config: LEEPConfig | EnsembleConfig, spec: EnvSpec) -> None:
        if isinstance(config, LEEPConfig) and not spec.discrete:
            raise ValueError("leep: pi_max combines probabilities of Discrete choices; this "
                             "family's actions are continuous (Box)")
        build = markov_builder(sees_task=False)
        self.members: list[PPO] = [build(config, spec) for _ in range(config.members)]

    def ensemble(self) -> Ensemble:
        """The members' current policies stacked into one Ensemble (copies: training the
        members does not change it)."""
        policies = iter([copy.deepcopy(member.policy) for member in self.members])
        return Ensemble(lambda: next(policies), len(self.members))

    def state_dict(self) -> dict:
        return {"members": [member.state_dict() for member in self.members]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["members"]) != len(self.members):
            raise ValueError(f"leep: the checkpoint has {len(state['members'])} members, the "
                             f"config {len(self.members)}")
        for member, member_state in zip(self.members, state["members"], strict=True):
            member.load_state_dict(member_state)


def bootstrap_resamples(count: int, members: int, rng: np.random.Generator) -> np.ndarray:
    """[members, count] indices: row i draws `count` of the `count` training levels with
    replacement (the classical bootstrap; each row holds about 63% of the levels)."""
    if count < 1 or members < 1:
        raise ValueError(f"bootstrap_resamples: count and members must be >= 1, got "
                         f"{count} and {members}")
    return rng.integers(count, size=(members, count))
