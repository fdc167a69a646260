"""Tests of the two building blocks of off-policy and ensemble learners.

ReplayBuffer: a ring of the last `capacity` transitions (oldest dropped, order kept),
sampled with an explicit generator, refused input named, and a state_dict that restores it
exactly. Ensemble: M stacked networks run together equal M separate networks (forward,
forward_each, gradients), seeded by the caller's RNG, with bad input refused.

Letters: B transitions added at once, M members, N inputs, I input size.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

import tasks
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import EnsembleAgent
from fewshot.collect.replay import ReplayBuffer
from fewshot.nn.actor_critic import MarkovActorCritic, RecurrentActorCritic
from fewshot.nn.ensemble import Ensemble
from fewshot.nn.policy import log_prob


def rows(start: int, stop: int) -> dict[str, torch.Tensor]:
    """Transitions start..stop-1: obs [B, 2] = (i, -i), act [B] = 10 i (long), done [B]."""
    i = torch.arange(start, stop)
    return {"obs": torch.stack([i, -i], dim=1).float(), "act": 10 * i,
            "done": i % 2 == 0}


def in_order(buffer: ReplayBuffer, name: str) -> torch.Tensor:
    """A field's stored transitions, oldest first, read through the buffer's state_dict (its
    ring of stored rows and the position the next one goes to)."""
    state = buffer.state_dict()
    stored = state["storage"][name]
    if state["size"] < state["capacity"]:
        return stored
    return torch.roll(stored, -state["position"], dims=0)


def numbers(buffer: ReplayBuffer) -> list[int]:
    """The transition numbers held, oldest first."""
    return in_order(buffer, "obs")[:, 0].long().tolist()


# ReplayBuffer: storing --------------------------------------------------------------------------

def test_a_buffer_below_capacity_keeps_everything_in_order():
    buffer = ReplayBuffer(5)
    assert len(buffer) == 0
    buffer.add(**rows(0, 2))
    buffer.add(**rows(2, 3))
    assert len(buffer) == 3
    assert numbers(buffer) == [0, 1, 2]
    for name, want in rows(0, 3).items():
        assert torch.equal(in_order(buffer, name), want), name
    assert in_order(buffer, "act").dtype == torch.long
    assert in_order(buffer, "done").dtype == torch.bool


def test_a_full_buffer_drops_the_oldest_transitions_first():
    buffer = ReplayBuffer(4)
    buffer.add(**rows(0, 3))
    buffer.add(**rows(3, 6))
    assert len(buffer) == 4
    assert numbers(buffer) == [2, 3, 4, 5]
    buffer.add(**rows(6, 7))
    assert len(buffer) == 4
    assert numbers(buffer) == [3, 4, 5, 6]
    for name, want in rows(3, 7).items():  # every field, still row-aligned
        assert torch.equal(in_order(buffer, name), want), name


def test_adding_more_than_capacity_at_once_keeps_the_last_ones():
    buffer = ReplayBuffer(3)
    buffer.add(**rows(0, 1))
    buffer.add(**rows(1, 9))
    assert len(buffer) == 3
    assert numbers(buffer) == [6, 7, 8]
    buffer.add(**rows(9, 10))
    assert numbers(buffer) == [7, 8, 9]


def test_a_buffer_of_one_keeps_the_last_transition():
    buffer = ReplayBuffer(1)
    for i in range(3):
        buffer.add(**rows(i, i + 1))
        assert len(buffer) == 1 and numbers(buffer) == [i]


# ReplayBuffer: sampling -------------------------------------------------------------------------

def test_sample_draws_stored_rows_with_every_field_aligned():
    buffer = ReplayBuffer(10)
    buffer.add(**rows(0, 3))  # 7 rows of the ring are still empty
    batch = buffer.sample(200, torch.Generator().manual_seed(0))
    assert set(batch) == {"obs", "act", "done"}
    assert batch["obs"].shape == (200, 2) and batch["act"].shape == (200,)
    i = batch["obs"][:, 0].long()
    assert set(i.tolist()) == {0, 1, 2}  # only stored rows, each of them
    assert torch.equal(batch["obs"][:, 1], -batch["obs"][:, 0])
    assert torch.equal(batch["act"], 10 * i) and torch.equal(batch["done"], i % 2 == 0)


def test_sample_follows_the_generator_and_not_the_global_rng():
    buffer = ReplayBuffer(6)
    buffer.add(**rows(0, 9))
    first = buffer.sample(16, torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    again = buffer.sample(16, torch.Generator().manual_seed(7))
    other = buffer.sample(16, torch.Generator().manual_seed(8))
    for name in first:
        assert torch.equal(first[name], again[name]), name
    assert not torch.equal(first["act"], other["act"])
    assert set(first["act"].tolist()) <= {30, 40, 50, 60, 70, 80}
    # the generator advances: two draws from one generator differ
    generator = torch.Generator().manual_seed(7)
    one, two = buffer.sample(16, generator), buffer.sample(16, generator)
    assert torch.equal(one["act"], first["act"]) and not torch.equal(one["act"], two["act"])


# ReplayBuffer: refused input --------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [0, -1, 2.5, True, "3", None])
def test_a_capacity_that_is_not_a_positive_integer_is_refused(capacity):
    with pytest.raises(ValueError, match="ReplayBuffer: capacity must be an integer >= 1"):
        ReplayBuffer(capacity)


def test_sampling_an_empty_buffer_is_refused():
    with pytest.raises(ValueError, match=r"ReplayBuffer\.sample: the buffer is empty"):
        ReplayBuffer(4).sample(1, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("transitions", "message"), [
    ({"obs": torch.zeros(1, 2), "act": torch.zeros(1, dtype=torch.long)},
     r"fields \['act', 'obs'\], but the buffer holds \['act', 'done', 'obs'\]"),
    ({**rows(0, 1), "extra": torch.zeros(1)},
     r"fields \['act', 'done', 'extra', 'obs'\], but the buffer holds"),
    ({**rows(0, 1), "obs": torch.zeros(1, 3)},
     r"field obs has shape \(3,\) per transition, the buffer \(2,\)"),
    ({**rows(0, 2), "act": torch.zeros(3, dtype=torch.long)},
     "fields differ in length"),
    ({}, "give at least one field"),
], ids=["missing-field", "extra-field", "wrong-shape", "ragged", "nothing"])
def test_a_transition_that_does_not_fit_is_refused_by_name(transitions, message):
    buffer = ReplayBuffer(4)
    buffer.add(**rows(0, 2))
    with pytest.raises(ValueError, match=message):
        buffer.add(**transitions)
    assert len(buffer) == 2 and numbers(buffer) == [0, 1]


def test_a_refused_add_leaves_a_full_buffer_unchanged():
    # The shape of the last field is wrong: nothing may be written, not even the fields
    # that fit, or the oldest rows would hold half of a transition that was refused.
    buffer = ReplayBuffer(3)
    buffer.add(**rows(0, 3))
    before = buffer.state_dict()
    bad = {"obs": torch.full((1, 2), 99.0), "act": torch.tensor([990]),
           "done": torch.zeros(1, 5, dtype=torch.bool)}
    with pytest.raises(ValueError, match="field done has shape"):
        buffer.add(**bad)
    after = buffer.state_dict()
    assert (after["size"], after["position"]) == (before["size"], before["position"])
    for name, stored in before["storage"].items():
        assert torch.equal(after["storage"][name], stored), name


# ReplayBuffer: state_dict -------------------------------------------------------------------------

def test_state_dict_restores_a_wrapped_buffer_exactly():
    buffer = ReplayBuffer(5)
    buffer.add(**rows(0, 4))
    buffer.add(**rows(4, 8))  # wrapped: holds 3..7, the next row goes to position 3
    state = buffer.state_dict()
    assert (state["capacity"], state["size"], state["position"]) == (5, 5, 3)
    saved = io.BytesIO()
    torch.save(state, saved)
    saved.seek(0)
    restored = ReplayBuffer(5)
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert len(restored) == 5 and numbers(restored) == [3, 4, 5, 6, 7]
    # the same draws, and the same ring after the same further transitions
    x = buffer.sample(12, torch.Generator().manual_seed(1))
    y = restored.sample(12, torch.Generator().manual_seed(1))
    assert all(torch.equal(x[n], y[n]) for n in x)
    buffer.add(**rows(8, 10))
    restored.add(**rows(8, 10))
    assert numbers(buffer) == numbers(restored) == [5, 6, 7, 8, 9]
    for name in ("obs", "act", "done"):
        assert torch.equal(buffer.storage[name], restored.storage[name]), name
        assert buffer.storage[name].dtype == restored.storage[name].dtype, name


def test_state_dict_restores_a_partly_filled_buffer_and_is_a_copy():
    buffer = ReplayBuffer(6)
    buffer.add(**rows(0, 2))
    state = buffer.state_dict()
    buffer.add(**rows(2, 5))  # later additions do not change the saved state
    assert state["size"] == 2 and state["storage"]["act"].tolist() == [0, 10]
    restored = ReplayBuffer(6)
    restored.load_state_dict(state)
    assert len(restored) == 2 and numbers(restored) == [0, 1]
    restored.add(**rows(2, 5))
    assert numbers(restored) == numbers(buffer) == [0, 1, 2, 3, 4]


def test_a_state_of_another_capacity_is_refused():
    buffer = ReplayBuffer(4)
    buffer.add(**rows(0, 2))
    with pytest.raises(ValueError, match="the saved buffer holds 4 transitions, this one 3"):
        ReplayBuffer(3).load_state_dict(buffer.state_dict())


# Ensemble ---------------------------------------------------------------------------------------

def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


class TwoInputs(nn.Module):
    """A Q-network's shape: f(obs, act)."""

    def __init__(self) -> None:
        super().__init__()
        self.obs = nn.Linear(3, 4)
        self.act = nn.Linear(2, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.obs(obs) + self.act(act)))[..., 0]


def ensemble(members: int = 3, make=make_mlp, seed: int = 0) -> Ensemble:
    torch.manual_seed(seed)
    return Ensemble(make, members)


def own_call(ens: Ensemble, m: int, make, *inputs: torch.Tensor) -> torch.Tensor:
    """Member m run on its own, as a separate module with its parameters."""
    return functional_call(make(), ens.member(m), inputs)


def test_forward_runs_every_member_on_the_same_input():
    ens = ensemble(3)
    x_NI = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    y_MN2 = ens(x_NI)
    assert y_MN2.shape == (3, 7, 2)
    for m in range(3):
        torch.testing.assert_close(y_MN2[m], own_call(ens, m, make_mlp, x_NI))
    assert not torch.allclose(y_MN2[0], y_MN2[1])


def test_forward_takes_several_inputs():
    ens = ensemble(2, TwoInputs)
    generator = torch.Generator().manual_seed(2)
    obs_NI, act_N2 = torch.randn(4, 3, generator=generator), torch.randn(4, 2,
                                                                          generator=generator)
    q_MN = ens(obs_NI, act_N2)
    assert q_MN.shape == (2, 4)
    for m in range(2):
        torch.testing.assert_close(q_MN[m], own_call(ens, m, TwoInputs, obs_NI, act_N2))


def test_forward_each_runs_member_m_on_its_own_slice():
    ens = ensemble(3)
    x_MNI = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(3))
    y_MN2 = ens.forward_each(x_MNI)
    assert y_MN2.shape == (3, 4, 2)
    for m in range(3):
        torch.testing.assert_close(y_MN2[m], own_call(ens, m, make_mlp, x_MNI[m]))
    # member 0 on member 1's slice is not what forward_each gives for slice 1
    assert not torch.allclose(own_call(ens, 0, make_mlp, x_MNI[1]), y_MN2[1])


@pytest.mark.parametrize("leading", [2, 4, 1])
def test_forward_each_refuses_inputs_without_one_slice_per_member(leading):
    ens = ensemble(3)
    with pytest.raises(ValueError, match=rf"forward_each: inputs need a leading axis of 3 "
                                         rf"members, got shape \({leading}, 4, 3\)"):
        ens.forward_each(torch.zeros(leading, 4, 3))
    with pytest.raises(ValueError, match="leading axis of 3"):  # every input is checked
        ensemble(3, TwoInputs).forward_each(torch.zeros(3, 4, 3), torch.zeros(leading, 4, 2))


def test_members_are_initialised_independently_like_separate_modules():
    ens = ensemble(3, seed=5)
    params = ens.params()
    assert list(params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert params["0.weight"].shape == (3, 5, 3) and params["2.bias"].shape == (3, 2)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not torch.equal(ens.member(a)["0.weight"], ens.member(b)["0.weight"])
    # M separate make() calls after the same seed give the same weights, member by member
    torch.manual_seed(5)
    separate = [make_mlp() for _ in range(3)]
    for m, module in enumerate(separate):
        for name, p in module.named_parameters():
            assert torch.equal(ens.member(m)[name], p), (m, name)


def test_the_same_seed_gives_the_same_ensemble_and_another_seed_another():
    a, b, c = ensemble(4, seed=9), ensemble(4, seed=9), ensemble(4, seed=10)
    for name in a.params():
        assert torch.equal(a.params()[name], b.params()[name]), name
    assert not torch.equal(a.params()["0.weight"], c.params()["0.weight"])


def test_gradients_reach_the_stacked_parameters_member_by_member():
    ens = ensemble(3)
    assert [p.shape[0] for p in ens.parameters()] == [3] * 4  # the stacked tensors only
    x_NI = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    weights_M = torch.tensor([1.0, -2.0, 0.5])
    loss = (weights_M[:, None, None] * ens(x_NI) ** 2).sum()
    loss.backward()
    for m in range(3):
        module = make_mlp()
        own = {n: p.detach().clone().requires_grad_() for n, p in ens.member(m).items()}
        (weights_M[m] * functional_call(module, own, (x_NI,)) ** 2).sum().backward()
        for name, p in ens.params().items():
            assert p.grad is not None, name
            torch.testing.assert_close(p.grad[m], own[name].grad, msg=f"{m} {name}")
    # one optimiser step moves every member
    before = {n: p.detach().clone() for n, p in ens.params().items()}
    torch.optim.SGD(ens.parameters(), lr=0.1).step()
    for name, p in ens.params().items():
        for m in range(3):
            assert not torch.equal(p[m], before[name][m]), (m, name)


def test_member_is_a_view_of_the_stacked_parameters():
    ens = ensemble(2)
    with torch.no_grad():
        ens.params()["2.bias"][1] += 1.0
    assert torch.equal(ens.member(1)["2.bias"], ens.params()["2.bias"][1])
    x_NI = torch.zeros(1, 3)
    torch.testing.assert_close(ens(x_NI)[1], own_call(ens, 1, make_mlp, x_NI))
    for m in (-1, 2):
        with pytest.raises(ValueError, match=rf"member must be in \[0, 2\), got {m}"):
            ens.member(m)


def test_a_state_dict_round_trip_gives_the_same_outputs():
    source, target = ensemble(3, seed=1), ensemble(3, seed=2)
    x_NI = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(source(x_NI), target(x_NI))
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(x_NI), source(x_NI), rtol=0, atol=0)


@pytest.mark.parametrize("members", [0, -2, 2.0, True, "3", None])
def test_a_member_count_that_is_not_a_positive_integer_is_refused(members):
    with pytest.raises(ValueError, match="Ensemble: members must be an integer >= 1"):
        Ensemble(make_mlp, members)


def test_members_with_buffers_are_refused_by_name():
    with pytest.raises(ValueError, match=r"members with buffers \(\['1.num_batches_tracked', "
                                         r"'1.running_mean', '1.running_var'\]\)"):
        Ensemble(lambda: nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 2)


# Ensembles acting in the collector ------------------------------------------------------

def _markov_ensemble(family, members=3, seed=0):
    spec = env_spec(family)
    torch.manual_seed(seed)
    return Ensemble(lambda: MarkovActorCritic(obs_size=spec.obs_size,
                                              action_size=spec.action_size,
                                              discrete=spec.discrete, hidden_sizes=[8]),
                    members)


def _member_outputs(ensemble, obs_TNO):
    """Each member's (head, value) on the observations, run one member at a time."""
    outputs = []
    for m in range(ensemble.members):
        x = obs_TNO.to(ensemble.stacked[0].dtype)
        head, value, _ = functional_call(ensemble.module, ensemble.member(m),
                                         (x, x.new_zeros(x.shape[1], 0)))
        outputs.append((head, value))
    return outputs


def test_an_ensemble_member_per_trial_acts_and_values_as_that_member_alone():
    family = tasks.get("point-nav")
    ensemble = _markov_ensemble(family)
    collector = Collector(family=family, num_envs=6, horizon=5)
    batch = collector.collect(EnsembleAgent(ensemble, mode="member"),
                              family.sample(6, "train", np.random.default_rng(0)), seed=3)
    outputs = _member_outputs(ensemble, batch.obs_TNO)
    log_std_MA = ensemble.params()["log_std"]
    for n in range(6):
        head, value = outputs[n % 3]
        with torch.no_grad():
            want = log_prob(head[:, n], log_std_MA[n % 3].expand_as(head[:, n]),
                            batch.act_TN[:, n])
        torch.testing.assert_close(batch.logp_TN[:, n], want, rtol=1e-5, atol=1e-5)
    values_TNM = batch.extras["values"]
    assert values_TNM.shape == (5, 6, 3)
    for m, (_, value) in enumerate(outputs):
        torch.testing.assert_close(values_TNM[..., m], value.detach(), rtol=1e-5, atol=1e-5)


def test_an_ensemble_acting_by_its_mean_takes_the_mean_of_its_members_probabilities():
    family = tasks.get("bandit")
    ensemble = _markov_ensemble(family, members=4)
    collector = Collector(family=family, num_envs=8)
    batch = collector.collect(EnsembleAgent(ensemble, mode="mean"),
                              family.sample(8, "train", np.random.default_rng(0)), seed=1)
    probs = torch.stack([torch.softmax(head, -1) for head, _ in
                         _member_outputs(ensemble, batch.obs_TNO)]).mean(0)
    want = torch.log(probs.gather(-1, batch.act_TN[..., None])[..., 0]).detach()
    torch.testing.assert_close(batch.logp_TN, want, rtol=1e-5, atol=1e-6)
    assert batch.act_TN.dtype == torch.long


def test_an_ensemble_agent_refuses_memory_and_unknown_modes():
    with pytest.raises(ValueError,
                       match=r"mode must be one of \['mean', 'member', 'draw', 'max'\]"):
        EnsembleAgent(_markov_ensemble(tasks.get("bandit")), mode="vote")
    recurrent = Ensemble(lambda: RecurrentActorCritic(obs_size=1, action_size=5, discrete=True,
                                                      hidden_size=4), 2)
    with pytest.raises(ValueError, match="Markov actor-critics"):
        EnsembleAgent(recurrent)
