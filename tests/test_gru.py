"""The hand-written GRU (fewshot.nn.gru) against torch.nn.GRU: same outputs, final state
and gradients, and the same RL² update through RecurrentActorCritic."""

import copy

import numpy as np
import pytest
import torch

import tasks
from fewshot.algos.ppo.config import RL2Config
from fewshot.algos.ppo.ppo import PPO
from fewshot.collect import Collector
from fewshot.collect.agents import ActorCriticAgent
from fewshot.nn.actor_critic import RecurrentActorCritic
from fewshot.nn.gru import gru_sequence


def native(gru, x, h):
    out, last = gru(x, h[None])
    return out, last[0]


def loss_of(out, last, weights):
    """A loss that weighs every output and the final state differently."""
    return (out * weights).sin().sum() + last.pow(2).sum()


@pytest.mark.parametrize("steps, batch, inputs, hidden", [(1, 1, 1, 1), (7, 3, 5, 4),
                                                         (40, 2, 6, 9)])
def test_gru_sequence_equals_torch_gru(steps, batch, inputs, hidden):
    torch.manual_seed(steps)
    gru = torch.nn.GRU(inputs, hidden).double()
    x = torch.randn(steps, batch, inputs, dtype=torch.double, requires_grad=True)
    h = torch.randn(batch, hidden, dtype=torch.double, requires_grad=True)
    weights = torch.randn(steps, batch, hidden, dtype=torch.double)
    wrt = [x, h, *gru.parameters()]
    expected = native(gru, x, h)
    got = gru_sequence(gru, x, h)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    grads_expected = torch.autograd.grad(loss_of(*expected, weights), wrt)
    grads_got = torch.autograd.grad(loss_of(*got, weights), wrt)
    for a, b in zip(grads_expected, grads_got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_gru_sequence_gradcheck_and_one_sided_losses():
    """Finite differences agree; a loss of the outputs only, or of the final state only,
    gets the right gradients (autograd passes None for the other)."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.double, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: gru_sequence(gru, x, h), (x, h))
    for pick in (0, 1):
        expected = torch.autograd.grad(native(gru, x, h)[pick].sum(), [x, h])
        got = torch.autograd.grad(gru_sequence(gru, x, h)[pick].sum(), [x, h])
        for a, b in zip(expected, got, strict=True):
            torch.testing.assert_close(b, a)


def test_gru_sequence_refuses_other_shapes():
    with pytest.raises(ValueError, match="one-layer"):
        gru_sequence(torch.nn.GRU(3, 4, num_layers=2), torch.zeros(2, 1, 3), torch.zeros(1, 4))


class NativeGRUActorCritic(RecurrentActorCritic):
    """The reference: nn.GRU's own autograd also when training."""

    def forward(self, x_TNI, h_NH):
        out_TNH, h_1NH = self.gru(x_TNI, h_NH[None])
        return self.policy_head(out_TNH), self.value_head(out_TNH)[..., 0], h_1NH[0]


def test_rl2_update_equals_the_native_gru_update():
    """Same trials, same start, same minibatch order: the same losses and weights after
    an update of several epochs and minibatches."""
    family = tasks.get("point-nav")
    config = RL2Config(meta_batch_size=4, episodes_per_trial=2, hidden_size=16,
                       ppo_epochs=2, minibatches=2)
    torch.manual_seed(0)
    fused = RecurrentActorCritic(obs_size=2, action_size=2, discrete=False, hidden_size=16)
    reference = NativeGRUActorCritic(obs_size=2, action_size=2, discrete=False,
                                     hidden_size=16)
    reference.load_state_dict(fused.state_dict())
    start = copy.deepcopy(fused.state_dict())
    collector = Collector(family=family, num_envs=4, horizon=30)
    batch = collector.collect(ActorCriticAgent(fused),
                              family.sample(4, "train", np.random.default_rng(0)),
                              episodes_per_trial=2, seed=0)
    learners = [PPO(policy=policy, config=config) for policy in (fused, reference)]
    stats = [learner.update(copy.deepcopy(batch), torch.Generator().manual_seed(1))
             for learner in learners]
    assert stats[0].keys() == stats[1].keys()
    for key in stats[0]:
        assert stats[0][key] == pytest.approx(stats[1][key], rel=1e-4, abs=1e-6), key
    for (name, a), b in zip(fused.state_dict().items(), reference.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(fused.gru.weight_hh_l0, start["gru.weight_hh_l0"])
