"""Tests of the collector running trials of several episodes (RL²'s sampling) and Discrete
actions: episode resets inside a trial, the validity mask over a whole trial, the extras
an actor-critic records, outcome flags per step and per episode, the agent's kind checked
against the family's actions, and the per-episode views of a Batch (task slices,
`Episodes.from_batch`, `per_episode`).

Letters as in fewshot/collect/batch.py: T steps, N = K x J trials, K tasks, J trials per
task, E episodes per trial, O observation size, A action size, H hidden size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tasks
from fewshot.collect import Batch, Collector, env_spec
from fewshot.collect.agents import ActorCriticAgent, GaussianAgent, UniformAgent
from fewshot.eval.learner import Episodes
from fewshot.nn.actor_critic import MarkovActorCritic, RecurrentActorCritic
from fewshot.nn.policy import GaussianMLP
from fewshot.references import ScriptedAgent

POINT_NAV = tasks.get("point-nav")
GUESSING = tasks.get("guessing-game")
BANDIT = tasks.get("bandit")


def goals(*xy: tuple[float, float]) -> list:
    return [POINT_NAV.task_from_dict({"goal_x": x, "goal_y": y}) for x, y in xy]


def arms(*means: float) -> object:
    return BANDIT.task_from_dict({f"arm_{i}": m for i, m in enumerate(means)})


def constant_policy(mean: tuple[float, float]) -> GaussianMLP:
    """A point-nav policy whose mean is `mean` at every observation, with negligible noise."""
    policy = GaussianMLP(obs_size=2, action_size=2, hidden_sizes=(4,), init_log_std=-20.0)
    with torch.no_grad():
        policy.mean[-1].weight.zero_()
        policy.mean[-1].bias.copy_(torch.tensor(mean))
    return policy


def collect(family, agent, task_list, *, J=1, E=1, horizon=None, seed=0) -> Batch:
    collector = Collector(family=family, num_envs=len(task_list) * J, horizon=horizon)
    return collector.collect(agent, task_list, seed=seed, trials_per_task=J,
                             episodes_per_trial=E)


def recurrent(family, *, hidden_size: int = 5, seed: int = 0) -> RecurrentActorCritic:
    spec = env_spec(family)
    torch.manual_seed(seed)
    return RecurrentActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                                discrete=spec.discrete, hidden_size=hidden_size)


def guessing_batch(*, K: int = 2, J: int = 2, E: int = 3, seed: int = 0) -> Batch:
    """A recurrent actor-critic guessing, K tasks x J trials x E episodes."""
    task_list = GUESSING.sample(K, "test-id", np.random.default_rng(seed))
    return collect(GUESSING, ActorCriticAgent(recurrent(GUESSING, seed=seed)), task_list,
                   J=J, E=E, seed=seed)


def ended(batch: Batch) -> torch.Tensor:
    """Steps that ended an episode of a running trial, [T, N]."""
    return (batch.terminated_TN | batch.truncated_TN) & batch.valid_TN


# Episodes inside a trial ---------------------------------------------------------------------

def test_a_trial_runs_its_episodes_in_a_row_with_resets_between_them():
    # The mean moves 0.05 along x per step. Goal (0.15, 0) is reached at the third step of
    # each episode; goal (0.5, 0.5) never, so its episodes are truncated at the horizon.
    E, horizon = 2, 6
    policy = constant_policy((0.5, 0.0))
    batch = collect(POINT_NAV, GaussianAgent(policy, [policy.params()]),
                    goals((0.15, 0.0), (0.5, 0.5)), E=E, horizon=horizon)

    T = batch.valid_TN.shape[0]
    assert E * horizon == T  # the longest trial: two truncated episodes
    t = torch.arange(T)
    valid_TN = torch.stack([t < 6, t < 12], dim=1)
    assert torch.equal(batch.valid_TN, valid_TN)
    want_episode_TN = torch.stack([t // 3, t // 6], dim=1)
    assert torch.equal(batch.episode_TN[valid_TN], want_episode_TN[valid_TN])
    assert torch.equal(batch.terminated_TN & valid_TN,
                       torch.stack([(t == 2) | (t == 5), torch.zeros(T, dtype=torch.bool)], 1))
    assert torch.equal(batch.truncated_TN & valid_TN,
                       torch.stack([torch.zeros(T, dtype=torch.bool), (t == 5) | (t == 11)], 1))
    # every episode starts at the origin: the env is reset between the episodes of a trial
    starts = {0: [0, 3], 1: [0, 6]}
    for n, steps in starts.items():
        for s in steps:
            assert torch.equal(batch.obs_TNO[s, n], torch.zeros(2)), (n, s)
            if s > 0:
                assert not torch.equal(batch.obs_TNO[s - 1, n], torch.zeros(2))
    # by hand: -(distance after each step), the same in both episodes of a trial
    far = -sum(math.hypot(0.5 - 0.05 * i, 0.5) for i in range(1, 7))
    want = torch.tensor([[-0.15, -0.15], [far, far]], dtype=torch.float64)
    torch.testing.assert_close(batch.episode_returns(), want, rtol=0, atol=1e-6)
    assert torch.equal(batch.episode_lengths(), torch.tensor([[3, 3], [6, 6]]))


def test_valid_covers_the_whole_trial_and_episode_counts_run_to_e_minus_one():
    E = 3
    batch = guessing_batch(K=2, J=2, E=E)
    valid_TN, episode_TN = batch.valid_TN, batch.episode_TN
    T, N = valid_TN.shape
    lengths_N = batch.episode_lengths().sum(1)
    # one block of valid steps from the first step to the end of the last episode
    assert torch.equal(valid_TN, torch.arange(T)[:, None] < lengths_N[None, :])
    assert int(lengths_N.max()) == T and (lengths_N <= E * GUESSING.horizon).all()
    # exactly E episode ends per trial, and the episode index counts them
    assert torch.equal(ended(batch).sum(0), torch.full((N,), E))
    before_TN = torch.cumsum(ended(batch).long(), 0) - ended(batch).long()
    assert torch.equal(episode_TN[valid_TN], before_TN[valid_TN])
    assert set(episode_TN[valid_TN].tolist()) == set(range(E))
    # the case has teeth: episodes of different lengths, some truncated, some right guesses
    assert len(set(batch.episode_lengths().flatten().tolist())) > 1
    assert (batch.terminated_TN & valid_TN).any()


def test_episode_starts_and_ends_line_up_with_the_previous_steps_end():
    batch = guessing_batch(K=2, J=1, E=4, seed=3)
    valid_TN, episode_TN = batch.valid_TN, batch.episode_TN
    changed_TN = episode_TN[1:] != episode_TN[:-1]
    # the episode index moves on exactly after a step that ended an episode
    assert torch.equal(changed_TN & valid_TN[1:], ended(batch)[:-1] & valid_TN[1:])


# Actor-critic extras -------------------------------------------------------------------------

def test_a_recurrent_agent_records_its_inputs_hidden_state_and_value():
    # Goals out of reach in 4 steps: every episode is truncated at the horizon.
    E, horizon, H = 3, 4, 6
    policy = recurrent(POINT_NAV, hidden_size=H)
    task_list = goals((0.5, -0.5), (-0.5, 0.5))
    batch = collect(POINT_NAV, ActorCriticAgent(policy), task_list, J=2, E=E,
                    horizon=horizon)
    T, N = E * horizon, 4
    assert batch.valid_TN.shape == (T, N) and batch.valid_TN.all()
    assert set(batch.extras) == {"inputs", "state", "value"}
    inputs, state, value = (batch.extras[k] for k in ("inputs", "state", "value"))
    assert inputs.shape == (T, N, 2 + 2 + 2) and state.shape == (T, N, H)
    assert value.shape == (T, N) and batch.logp_TN.shape == (T, N)
    # inputs: [obs, previous action, previous reward, new-episode flag]
    torch.testing.assert_close(inputs[..., :2], batch.obs_TNO.float())
    assert torch.equal(inputs[0, :, 2:5], torch.zeros(N, 3))
    torch.testing.assert_close(inputs[1:, :, 2:4], batch.act_TN[:-1].float())
    torch.testing.assert_close(inputs[1:, :, 4], batch.rew_TN[:-1])
    new_episode_T = (torch.arange(T) % horizon == 0).float()
    assert torch.equal(inputs[..., 5], new_episode_T[:, None].expand(T, N))
    # the hidden state is zero when the trial begins and is not reset between episodes
    assert torch.equal(state[0], torch.zeros(N, H))
    assert (state[horizon].abs() > 0).all() and (state[2 * horizon].abs() > 0).all()
    # replaying the recorded inputs from the first state gives the recorded values and
    # log-probs (what a PPO update relies on)
    with torch.no_grad():
        head_TNA, value_TN, _ = policy(inputs, state[0])
        logp_TN = policy.log_prob(head_TNA, batch.act_TN)
    torch.testing.assert_close(value_TN, value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logp_TN, batch.logp_TN, rtol=1e-5, atol=1e-5)


def test_a_discrete_recurrent_agent_sees_its_previous_choice_one_hot():
    batch = guessing_batch(K=2, J=1, E=3, seed=1)
    T, N = batch.valid_TN.shape
    C = env_spec(GUESSING).action_size
    assert batch.act_TN.shape == (T, N) and batch.act_TN.dtype == torch.long
    assert ((batch.act_TN >= 0) & (batch.act_TN < C)).all()
    inputs = batch.extras["inputs"]
    assert inputs.shape == (T, N, 8 + C + 2)
    previous = torch.nn.functional.one_hot(batch.act_TN[:-1], C).float()
    assert torch.equal(inputs[1:, :, 8:8 + C], previous)
    assert torch.equal(inputs[1:, :, 8 + C], batch.rew_TN[:-1])
    # the new-episode flag: the first step, and every step after an episode ended
    flags_TN = torch.cat([torch.ones(1, N), ended(batch)[:-1].float()])
    assert torch.equal(inputs[..., -1], flags_TN)
    assert (flags_TN[1:] > 0).any()


def test_a_markov_agent_records_the_observation_and_no_state():
    spec = env_spec(POINT_NAV)
    torch.manual_seed(0)
    policy = MarkovActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                               discrete=False, hidden_sizes=(8,))
    batch = collect(POINT_NAV, ActorCriticAgent(policy), goals((0.5, -0.5), (0.2, 0.3)),
                    J=2, E=2, horizon=3)
    T, N = batch.valid_TN.shape
    assert torch.equal(batch.extras["inputs"], batch.obs_TNO.float())
    assert batch.extras["state"].shape == (T, N, 0)
    with torch.no_grad():
        want_value = policy.critic(batch.obs_TNO.float())[..., 0]
    torch.testing.assert_close(batch.extras["value"], want_value)


def test_a_markov_agent_told_the_task_sees_each_trials_parameters():
    J, E = 2, 2
    spec = env_spec(POINT_NAV)
    torch.manual_seed(0)
    policy = MarkovActorCritic(obs_size=spec.obs_size, action_size=spec.action_size,
                               discrete=False, hidden_sizes=(8,), task_size=spec.task_size)
    task_list = goals((0.5, -0.5), (0.2, 0.3), (-0.4, -0.1))
    batch = collect(POINT_NAV, ActorCriticAgent(policy), task_list, J=J, E=E, horizon=3)
    T, N = batch.valid_TN.shape
    inputs = batch.extras["inputs"]
    assert inputs.shape == (T, N, 2 + 2)
    torch.testing.assert_close(inputs[..., :2], batch.obs_TNO.float())
    goal_N2 = torch.tensor([[task.goal_x, task.goal_y] for task in task_list
                            for _ in range(J)])
    torch.testing.assert_close(inputs[..., 2:], goal_N2.expand(T, N, 2))


# Outcomes ----------------------------------------------------------------------------------

def test_point_nav_success_is_flagged_exactly_at_the_terminating_step():
    # A straight-to-goal agent reaches every goal, in every episode of every trial.
    K, J, E = 2, 2, 3
    task_list = goals((0.3, -0.2), (-0.1, 0.4))
    batch = collect(POINT_NAV, ScriptedAgent(POINT_NAV), task_list, J=J, E=E, horizon=12)
    valid_TN = batch.valid_TN
    success_TN = batch.outcomes["success"]
    assert list(batch.outcomes) == ["success"] and success_TN.shape == valid_TN.shape
    assert success_TN.dtype == torch.bool
    assert torch.equal(success_TN & valid_TN, batch.terminated_TN & valid_TN)
    assert not (batch.truncated_TN & valid_TN).any()
    # each episode starts at the origin, and only there
    T = valid_TN.shape[0]
    first_TN = torch.cat([torch.ones(1, K * J, dtype=torch.bool),
                          batch.episode_TN[1:] != batch.episode_TN[:-1]]) & valid_TN
    at_origin_TN = (batch.obs_TNO == 0).all(-1)
    assert torch.equal(at_origin_TN & valid_TN, first_TN)
    assert int(first_TN.sum()) == K * J * E and T < 3 * E * 12
    episodes = batch.episode_outcomes()
    assert set(episodes) == {"success"}
    assert torch.equal(episodes["success"], torch.ones(K * J, E, dtype=torch.bool))
    # 0.3 away along x takes 3 steps, 0.4 along y 4; each episode walks the same way
    assert torch.equal(batch.episode_lengths(), torch.tensor([[3] * E] * 2 + [[4] * E] * 2))


def test_point_nav_success_is_per_episode_when_some_episodes_fail():
    policy = constant_policy((0.5, 0.0))
    batch = collect(POINT_NAV, GaussianAgent(policy, [policy.params()]),
                    goals((0.15, 0.0), (0.5, 0.5), (0.05, 0.0)), E=2, horizon=6)
    success_NE = batch.episode_outcomes()["success"]
    want = torch.tensor([[True, True], [False, False], [True, True]])
    assert torch.equal(success_NE, want)
    assert torch.equal(success_NE, batch.episode_flag(batch.terminated_TN))


def test_guessing_game_success_is_a_right_guess_which_ends_the_episode():
    batch = guessing_batch(K=2, J=2, E=3, seed=2)
    valid_TN = batch.valid_TN
    success_TN = batch.outcomes["success"] & valid_TN
    assert torch.equal(success_TN, batch.terminated_TN & valid_TN)
    # a right guess earns 0, a wrong one -1
    assert torch.equal(batch.rew_TN[valid_TN], torch.where(success_TN, 0.0, -1.0)[valid_TN])
    labels_N = torch.tensor([task.label for task in batch.tasks for _ in range(2)])
    assert torch.equal(success_TN, (batch.act_TN == labels_N) & valid_TN)
    success_NE = batch.episode_outcomes()["success"]
    truncated_NE = batch.episode_flag(batch.truncated_TN)
    assert torch.equal(success_NE, ~truncated_NE)  # every episode ends one way or the other


# The agent's kind against the family's actions --------------------------------------------------

@pytest.mark.parametrize(("family", "agent_family", "agent_kind", "family_kind"), [
    (POINT_NAV, BANDIT, "discrete choices", "continuous actions"),
    (BANDIT, POINT_NAV, "continuous actions", "discrete choices"),
], ids=["discrete-agent-on-point-nav", "box-agent-on-bandit"])
def test_the_collector_refuses_an_agent_of_the_other_kind(family, agent_family, agent_kind,
                                                          family_kind):
    collector = Collector(family=family, num_envs=2)
    task_list = family.sample(2, "train", np.random.default_rng(0))
    agent = UniformAgent(env_spec(agent_family))
    with pytest.raises(ValueError, match=f"the agent acts with {agent_kind}; family "
                                         f"'{family.name}' takes {family_kind}"):
        collector.collect(agent, task_list, seed=0)
    assert collector.env_steps == 0


def test_a_uniform_agent_on_the_bandit_pulls_arms_in_range_for_zero_or_one():
    K, J, E = 3, 2, 5
    task_list = BANDIT.sample(K, "train", np.random.default_rng(0))
    batch = collect(BANDIT, UniformAgent(env_spec(BANDIT)), task_list, J=J, E=E)
    T, N = batch.valid_TN.shape
    assert (T, N) == (E, K * J)  # one pull per episode
    assert batch.act_TN.dtype == torch.long and batch.act_TN.shape == (T, N)
    assert ((batch.act_TN >= 0) & (batch.act_TN < 5)).all()
    assert len(set(batch.act_TN.flatten().tolist())) > 1
    assert set(batch.rew_TN.flatten().tolist()) <= {0.0, 1.0}
    assert batch.valid_TN.all() and batch.terminated_TN.all()
    assert torch.equal(batch.episode_TN, torch.arange(T)[:, None].expand(T, N))
    assert batch.outcomes == {} and batch.episode_outcomes() == {}


def test_a_bandit_pays_each_arms_mean_when_the_means_are_zero_or_one():
    task_list = [arms(1.0, 0.0, 0.0, 1.0, 0.0), arms(0.0, 1.0, 0.0, 0.0, 0.0)]
    batch = collect(BANDIT, UniformAgent(env_spec(BANDIT)), task_list, J=2, E=6, seed=3)
    means_NC = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]] * 2 + [[0.0, 1.0, 0.0, 0.0, 0.0]] * 2)
    want_TN = means_NC.gather(1, batch.act_TN.T).T
    assert torch.equal(batch.rew_TN, want_TN)
    assert torch.equal(batch.episode_returns(), want_TN.T.double())


# Per-episode views of a batch ---------------------------------------------------------------------

def test_batch_task_slices_outcomes_and_extras_too():
    K, J = 3, 2
    batch = guessing_batch(K=K, J=J, E=2, seed=4)
    for k in range(K):
        one = batch.task(k)
        cols = slice(k * J, (k + 1) * J)
        assert one.tasks == [batch.tasks[k]] and one.num_trials == J
        assert one.episodes_per_trial == 2 and one.trials_per_task == J
        assert set(one.outcomes) == {"success"} and set(one.extras) == set(batch.extras)
        assert torch.equal(one.outcomes["success"], batch.outcomes["success"][:, cols])
        for name, value in batch.extras.items():
            assert torch.equal(one.extras[name], value[:, cols]), name
        assert torch.equal(one.episode_returns(), batch.episode_returns()[cols])
        assert torch.equal(one.episode_outcomes()["success"],
                           batch.episode_outcomes()["success"][cols])


def test_episodes_from_a_batch_are_per_task_in_trial_order():
    K, J, E = 2, 3, 2
    batch = guessing_batch(K=K, J=J, E=E, seed=5)
    episodes = Episodes.from_batch(batch)
    returns_NE, lengths_NE = batch.episode_returns(), batch.episode_lengths()
    success_NE = batch.episode_outcomes()["success"]
    terminated_NE = batch.episode_flag(batch.terminated_TN)
    for name in ("returns", "lengths", "terminated", "diverged"):
        assert getattr(episodes, name).shape == (K, J * E), name
    assert episodes.outcomes["success"].shape == (K, J * E)
    for k in range(K):
        for j in range(J):
            for e in range(E):
                n, c = k * J + j, j * E + e
                assert episodes.returns[k, c] == returns_NE[n, e]
                assert episodes.lengths[k, c] == lengths_NE[n, e]
                assert episodes.terminated[k, c] == terminated_NE[n, e]
                assert episodes.outcomes["success"][k, c] == success_NE[n, e]
    assert not episodes.diverged.any()
    both = Episodes.concat([episodes, episodes])
    assert both.returns.shape == (2 * K, J * E) and both.outcomes["success"].shape == (2 * K,
                                                                                       J * E)


def test_per_episode_sums_equal_a_hand_loop_over_valid_steps():
    K, J, E = 2, 2, 3
    batch = guessing_batch(K=K, J=J, E=E, seed=6)
    values_TN = torch.randn(batch.rew_TN.shape, generator=torch.Generator().manual_seed(0))
    T, N = values_TN.shape
    want = torch.zeros(N, E, dtype=torch.float64)
    lengths = torch.zeros(N, E, dtype=torch.long)
    for t in range(T):
        for n in range(N):
            if batch.valid_TN[t, n]:
                want[n, batch.episode_TN[t, n]] += float(values_TN[t, n])
                lengths[n, batch.episode_TN[t, n]] += 1
    got = batch.per_episode(values_TN)
    assert got.dtype == torch.float64 and got.shape == (N, E)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert torch.equal(batch.episode_lengths(), lengths)
    assert batch.mean_return() == pytest.approx(float(batch.episode_returns().mean()))
    # steps after a trial ended carry values that must not count
    assert (~batch.valid_TN).any()
