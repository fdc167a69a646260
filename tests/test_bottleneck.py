"""The information bottleneck of PPO-trained policies (`input_l1`): which weights it
reads, that it shrinks them while plain PPO leaves the update as it was, and that a
negative weight is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tasks
from fewshot.algos.ppo.config import MarkovPPOConfig, RL2Config
from fewshot.algos.ppo.ppo import PPO
from fewshot.checks import ConfigError
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import ActorCriticAgent
from fewshot.nn.actor_critic import MarkovActorCritic, RecurrentActorCritic


def markov_policy(family, seed: int = 0) -> MarkovActorCritic:
    spec = env_spec(family)
    torch.manual_seed(seed)
    return MarkovActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                             discrete=spec.discrete, hidden_sizes=[16])


def input_l1(policy) -> float:
    return float(sum(w.detach().abs().sum() for w in policy.input_weights()))


def test_the_input_weights_are_the_first_layers_or_the_grus_input_weights():
    markov = MarkovActorCritic(obs_size=7, action_size=2, discrete=False, hidden_sizes=[5, 3])
    assert [tuple(w.shape) for w in markov.input_weights()] == [(5, 7), (5, 7)]
    assert markov.input_weights()[0] is markov.actor[0].weight
    recurrent = RecurrentActorCritic(obs_size=7, action_size=2, discrete=False, hidden_size=4)
    # the GRU reads [obs, previous action, previous reward, new-episode flag]: 7 + 2 + 2
    assert [tuple(w.shape) for w in recurrent.input_weights()] == [(12, 11)]


def test_the_penalty_shrinks_the_input_weights_and_zero_is_plain_ppo():
    family = tasks.get("cheetah-distract")
    task_list = family.sample(4, "train", np.random.default_rng(0))
    policy = markov_policy(family)
    batch = Collector(family=family, num_envs=8, horizon=20).collect(
        ActorCriticAgent(policy), task_list, trials_per_task=2, seed=0)
    learners = {}
    for name, weight in (("penalized", 0.05), ("plain", 0.0), ("default", None)):
        config = MarkovPPOConfig(hidden_sizes=[16], lr=3e-3, **(
            {} if weight is None else {"input_l1": weight}))
        learners[name] = PPO(policy=markov_policy(family), config=config)
    before = input_l1(learners["plain"].policy)
    stats = {name: learner.update(batch, torch.Generator().manual_seed(0))
             for name, learner in learners.items()}
    assert 0 < stats["penalized"]["input_l1"] <= before + 1e-6
    assert "input_l1" not in stats["plain"]
    # measured: one update takes the penalized L1 norm from 73.8 to 49.8, and moves
    # plain PPO's to 75.1
    assert input_l1(learners["penalized"].policy) < 0.8 * before
    assert 0.97 * before < input_l1(learners["plain"].policy) < 1.03 * before
    for a, b in zip(learners["plain"].policy.parameters(),
                    learners["default"].policy.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("config", [MarkovPPOConfig, RL2Config])
def test_a_negative_weight_is_refused_naming_the_field(config):
    with pytest.raises(ConfigError, match="input_l1"):
        config(input_l1=-0.1)
