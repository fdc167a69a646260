"""Tests of the collector with Markov Gaussian agents (MAML's sampling): batch layout, the
validity mask, log-probs, per-task parameters, determinism, the map onto the env's action
box, input checks and counters.

Letters as in fewshot/collect/batch.py: T steps, N = K x E one-episode trials, K tasks,
E trials (episodes) per task, O observation size, A action size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tasks
from fewshot.collect import Batch, Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.nn.policy import GaussianMLP, distribution, log_prob

POINT_NAV = tasks.get("point-nav")
CHEETAH = tasks.get("cheetah-vel")

TENSOR_FIELDS = ("obs_TNO", "act_TN", "rew_TN", "logp_TN", "terminated_TN", "truncated_TN",
                 "valid_TN", "episode_TN")


class Sampler:
    """K tasks x E one-episode trials through the collector, as MAML samples them."""

    def __init__(self, *, family, num_tasks: int, episodes_per_task: int, horizon=None,
                 **options) -> None:
        self.num_tasks, self.episodes_per_task = num_tasks, episodes_per_task
        self.collector = Collector(family=family, num_envs=num_tasks * episodes_per_task,
                                   horizon=horizon, **options)
        self.obs_size = self.collector.spec.obs_size
        self.action_size = self.collector.spec.action_size
        self.env_actions = self.collector.env_actions
        self.envs = self.collector.envs

    def sample(self, policy, params, task_list, *, seed: int) -> Batch:
        return self.collector.collect(GaussianAgent(policy, params), task_list,
                                      trials_per_task=self.episodes_per_task, seed=seed)

    @property
    def env_steps(self) -> int:
        return self.collector.env_steps

    @property
    def sample_seconds(self) -> float:
        return self.collector.sample_seconds


def make_sampler(family=POINT_NAV, *, K: int = 3, E: int = 2, horizon: int = 6) -> Sampler:
    threads = {} if family is POINT_NAV else {"nthread": 1}  # point-nav has no threads
    return Sampler(family=family, num_tasks=K, episodes_per_task=E, horizon=horizon,
                   **threads)


def make_policy(sampler: Sampler, *, seed: int = 0, init_log_std: float = 0.0) -> GaussianMLP:
    torch.manual_seed(seed)
    return GaussianMLP(obs_size=sampler.obs_size, action_size=sampler.action_size,
                       hidden_sizes=(8,), init_log_std=init_log_std)


def constant_policy(mean: tuple[float, float], log_std: float) -> GaussianMLP:
    """A point-nav policy whose mean is `mean` at every observation."""
    policy = GaussianMLP(obs_size=2, action_size=2, hidden_sizes=(4,), init_log_std=log_std)
    with torch.no_grad():
        policy.mean[-1].weight.zero_()
        policy.mean[-1].bias.copy_(torch.tensor(mean))
    return policy


def goals(*xy: tuple[float, float]) -> list:
    return [POINT_NAV.task_from_dict({"goal_x": x, "goal_y": y}) for x, y in xy]


def copied(policy: GaussianMLP) -> dict[str, torch.Tensor]:
    """The policy's parameters as a fresh dict of detached copies."""
    return {name: p.detach().clone() for name, p in policy.named_parameters()}


def with_shifted_bias(policy: GaussianMLP, shift: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of the policy's parameters with the mean head's bias moved by `shift`."""
    params = copied(policy)
    params[f"mean.{len(policy.mean) - 1}.bias"] += shift
    return params


def columns(batch: Batch, k: int) -> slice:
    return slice(k * batch.trials_per_task, (k + 1) * batch.trials_per_task)


def last_valid_step(batch: Batch) -> torch.Tensor:
    """Index of each episode's last valid step, [N]."""
    return batch.valid_TN.sum(0) - 1


# Layout -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "obs_size", "action_size"),
                         [(POINT_NAV, 2, 2), (CHEETAH, 17, 6)], ids=["point-nav", "cheetah-vel"])
def test_sample_returns_tensors_shaped_time_by_episode(family, obs_size, action_size):
    K, E, horizon = 3, 2, 5
    sampler = make_sampler(family, K=K, E=E, horizon=horizon)
    policy = make_policy(sampler)
    task_list = family.sample(K, "train", np.random.default_rng(0))
    batch = sampler.sample(policy, [policy.params()] * K, task_list, seed=0)

    T, N = batch.obs_TNO.shape[:2]
    assert N == K * E and 1 <= T <= horizon
    assert batch.obs_TNO.shape == (T, N, obs_size)
    assert batch.act_TN.shape == (T, N, action_size)
    for name in ("rew_TN", "logp_TN", "terminated_TN", "truncated_TN", "valid_TN"):
        assert getattr(batch, name).shape == (T, N), name
    for name in ("terminated_TN", "truncated_TN", "valid_TN"):
        assert getattr(batch, name).dtype == torch.bool, name
    assert batch.tasks == task_list and batch.episodes_per_trial == 1
    assert batch.num_tasks == K and batch.trials_per_task == E and batch.num_trials == K * E
    assert batch.adv_TN is None and batch.extras == {}
    assert torch.equal(batch.episode_TN, torch.zeros(T, N, dtype=torch.long))
    assert list(batch.outcomes) == list(family.outcomes)


def test_point_nav_episodes_start_at_the_origin():
    sampler = make_sampler(K=2, E=3)
    policy = make_policy(sampler)
    batch = sampler.sample(policy, [policy.params()] * 2, goals((0.3, 0.1), (-0.2, 0.4)),
                           seed=3)
    assert torch.equal(batch.obs_TNO[0], torch.zeros(6, 2))
    assert not torch.equal(batch.obs_TNO[1], torch.zeros(6, 2))


def test_batch_task_selects_the_columns_of_one_task():
    sampler = make_sampler(K=3, E=2)
    policy = make_policy(sampler)
    task_list = goals((0.3, 0.1), (-0.2, 0.4), (0.0, -0.3))
    batch = sampler.sample(policy, [policy.params()] * 3, task_list, seed=1)
    batch.adv_TN = torch.randn(batch.rew_TN.shape)
    one = batch.task(1)
    assert one.num_tasks == 1 and one.tasks == [task_list[1]]
    for name in ("obs_TNO", "act_TN", "rew_TN", "logp_TN", "terminated_TN", "truncated_TN",
                 "valid_TN", "episode_TN", "adv_TN"):
        assert torch.equal(getattr(one, name), getattr(batch, name)[:, 2:4]), name
    assert torch.equal(one.outcomes["success"], batch.outcomes["success"][:, 2:4])


# Episode ends and the validity mask ---------------------------------------------------------

def test_valid_covers_each_episode_up_to_its_termination_or_truncation():
    # The mean moves 0.05 along x per step with negligible noise. Goal (0.15, 0) is reached
    # at step 2, goal (0.05, 0) at step 0; (0.5, 0.5) never, so that episode is truncated.
    K, E, horizon = 3, 2, 6
    sampler = make_sampler(K=K, E=E, horizon=horizon)
    policy = constant_policy((0.5, 0.0), log_std=-20.0)
    batch = sampler.sample(policy, [policy.params()] * K,
                           goals((0.15, 0.0), (0.05, 0.0), (0.5, 0.5)), seed=0)

    ends = torch.tensor([2, 2, 0, 0, 5, 5])
    t = torch.arange(batch.valid_TN.shape[0])[:, None]
    assert batch.valid_TN.shape[0] == horizon
    assert torch.equal(batch.valid_TN, t <= ends)
    assert torch.equal(batch.terminated_TN & batch.valid_TN,
                       (t == ends) & torch.tensor([True] * 4 + [False] * 2))
    assert torch.equal(batch.truncated_TN & batch.valid_TN,
                       (t == ends) & torch.tensor([False] * 4 + [True] * 2))


def test_sampling_stops_once_every_episode_has_ended():
    sampler = make_sampler(K=2, E=2, horizon=20)
    policy = constant_policy((0.5, 0.0), log_std=-20.0)
    batch = sampler.sample(policy, [policy.params()] * 2, goals((0.15, 0.0), (0.05, 0.0)),
                           seed=0)
    assert batch.valid_TN.shape[0] == 3
    assert batch.terminated_TN[-1, :2].all() and not batch.valid_TN[-1, 2:].any()


def test_rewards_after_an_episode_ends_do_not_count():
    sampler = make_sampler(K=3, E=2, horizon=6)
    policy = constant_policy((0.5, 0.0), log_std=-20.0)
    batch = sampler.sample(policy, [policy.params()] * 3,
                           goals((0.15, 0.0), (0.05, 0.0), (0.5, 0.5)), seed=0)
    # a simulation whose trial has ended is idle: no reward, the same observation
    invalid = ~batch.valid_TN
    assert invalid.any() and (batch.rew_TN[invalid] == 0).all()
    for n in range(batch.valid_TN.shape[1]):
        last = int(batch.valid_TN[:, n].nonzero().max())
        after = batch.obs_TNO[last + 2:, n]  # the step after the last one shows its outcome
        assert torch.equal(after, batch.obs_TNO[last + 1:last + 2, n].expand_as(after))
    returns = batch.episode_returns()[:, 0]
    want = torch.where(batch.valid_TN, batch.rew_TN.double(), 0.0).sum(0)
    torch.testing.assert_close(returns, want, rtol=0, atol=0)
    # by hand: -(distance after each step); goal 0.15 is reached after 0.05, 0.10, 0.15
    torch.testing.assert_close(returns[:4], torch.tensor([-0.15, -0.15, 0.0, 0.0],
                                                         dtype=torch.float64),
                               rtol=0, atol=1e-6)
    assert batch.mean_return() == pytest.approx(float(returns.mean()))


def test_every_episode_ends_exactly_once_at_its_last_valid_step():
    # Noisy walks toward goals near the origin: some end on the goal, some at the horizon.
    K, E, horizon = 4, 8, 12
    sampler = make_sampler(K=K, E=E, horizon=horizon)
    policy = constant_policy((0.25, 0.0), log_std=math.log(0.1))
    batch = sampler.sample(policy, [policy.params()] * K,
                           goals((0.05, 0.0), (0.075, 0.0), (0.1, 0.0), (0.6, 0.0)), seed=4)

    valid, ended = batch.valid_TN, batch.terminated_TN | batch.truncated_TN
    T = valid.shape[0]
    last = last_valid_step(batch)
    assert valid[0].all()
    assert torch.equal(valid, torch.arange(T)[:, None] <= last[None, :])  # a prefix in time
    assert torch.equal((ended & valid).sum(0), torch.ones(K * E, dtype=torch.long))
    assert ended[last, torch.arange(K * E)].all()
    # truncation happens only at the horizon; an episode over before it was terminated
    assert torch.equal(batch.truncated_TN[last, torch.arange(K * E)], last == horizon - 1)
    assert (batch.terminated_TN[last, torch.arange(K * E)] | (last == horizon - 1)).all()
    # the case has teeth: both kinds of ending occur, and some episodes end early
    assert (batch.terminated_TN & valid).any() and (batch.truncated_TN & valid).any()
    assert (last < horizon - 1).any()


# Log-probabilities and per-task parameters ---------------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["one-params-object", "per-task-params"])
def test_logp_is_the_log_prob_of_the_stored_action_under_the_tasks_params(shared):
    K = 3
    sampler = make_sampler(K=K, E=2, horizon=8)
    policy = make_policy(sampler, init_log_std=-0.5)
    if shared:
        params = [policy.params()] * K
    else:
        params = [with_shifted_bias(policy, torch.tensor([0.3 * k, -0.2 * k]))
                  for k in range(K)]
        for k, p in enumerate(params):
            p["log_std"] += 0.4 * k  # and a different spread per task
    batch = sampler.sample(policy, params, goals((0.3, 0.1), (-0.2, 0.4), (0.0, -0.3)), seed=5)
    for k in range(K):
        cols = columns(batch, k)
        with torch.no_grad():
            mean, log_std = distribution(policy, params[k], batch.obs_TNO[:, cols])
            want = log_prob(mean, log_std, batch.act_TN[:, cols])
        valid = batch.valid_TN[:, cols]
        torch.testing.assert_close(batch.logp_TN[:, cols][valid], want[valid],
                                   rtol=1e-5, atol=1e-5)


def test_one_params_object_and_equal_copies_give_the_same_batch():
    K = 3
    sampler = make_sampler(K=K, E=2, horizon=8)
    policy = make_policy(sampler)
    task_list = goals((0.3, 0.1), (-0.2, 0.4), (0.0, -0.3))
    shared = sampler.sample(policy, [policy.params()] * K, task_list, seed=2)
    copies = sampler.sample(policy, [copied(policy) for _ in range(K)], task_list, seed=2)
    for name in TENSOR_FIELDS:
        torch.testing.assert_close(getattr(copies, name), getattr(shared, name),
                                   rtol=1e-6, atol=1e-6, msg=name)


def test_task_params_change_only_that_tasks_episodes():
    K, shift = 3, torch.tensor([0.5, -0.25])
    sampler = make_sampler(K=K, E=2, horizon=8)
    policy = make_policy(sampler, init_log_std=-0.5)
    task_list = goals((0.3, 0.1), (-0.2, 0.4), (0.0, -0.3))
    base = [copied(policy) for _ in range(K)]
    moved = [base[0], with_shifted_bias(policy, shift), base[2]]
    before = sampler.sample(policy, base, task_list, seed=7)
    after = sampler.sample(policy, moved, task_list, seed=7)

    for k in (0, 2):
        cols = columns(before, k)
        for name in ("obs_TNO", "act_TN", "rew_TN", "logp_TN", "valid_TN"):
            torch.testing.assert_close(getattr(after, name)[:, cols],
                                       getattr(before, name)[:, cols], rtol=1e-6, atol=1e-6,
                                       msg=f"task {k} {name}")
    cols = columns(before, 1)
    # same seed, same noise, same first observation (the origin): the first action moves
    # by exactly the shift of the mean
    torch.testing.assert_close(after.act_TN[0, cols] - before.act_TN[0, cols],
                               shift.expand(2, 2), rtol=0, atol=1e-6)
    # task 1's stored log-probs are those of the shifted policy, not of the base one
    with torch.no_grad():
        obs, act = after.obs_TNO[:, cols], after.act_TN[:, cols]
        logp_moved = log_prob(*distribution(policy, moved[1], obs), act)
        logp_base = log_prob(*distribution(policy, base[1], obs), act)
    valid = after.valid_TN[:, cols]
    torch.testing.assert_close(after.logp_TN[:, cols][valid], logp_moved[valid],
                               rtol=1e-5, atol=1e-5)
    assert ((after.logp_TN[:, cols] - logp_base).abs()[valid] > 1e-3).all()


# Determinism ------------------------------------------------------------------------------

def two_train_tasks(family):
    """A 2-task, 2-episode, 5-step sampler with a policy, two train tasks and params."""
    sampler = make_sampler(family, K=2, E=2, horizon=5)
    policy = make_policy(sampler)
    return sampler, policy, family.sample(2, "train", np.random.default_rng(1)), \
        [policy.params()] * 2


@pytest.mark.parametrize("family", [POINT_NAV, CHEETAH], ids=["point-nav", "cheetah-vel"])
def test_same_params_tasks_and_seed_give_a_bit_identical_batch(family):
    sampler, policy, task_list, params = two_train_tasks(family)
    first = sampler.sample(policy, params, task_list, seed=11)
    torch.manual_seed(12345)  # the global RNG plays no part
    sampler.sample(policy, params, task_list, seed=12)
    again = sampler.sample(policy, params, task_list, seed=11)
    fresh = make_sampler(family, K=2, E=2, horizon=5).sample(policy, params, task_list,
                                                             seed=11)
    for other in (again, fresh):
        for name in TENSOR_FIELDS:
            assert torch.equal(getattr(other, name), getattr(first, name)), name
        assert other.tasks == first.tasks


@pytest.mark.parametrize("family", [POINT_NAV, CHEETAH], ids=["point-nav", "cheetah-vel"])
def test_a_different_seed_gives_different_actions(family):
    sampler, policy, task_list, params = two_train_tasks(family)
    a = sampler.sample(policy, params, task_list, seed=0)
    b = sampler.sample(policy, params, task_list, seed=1)
    assert (a.act_TN[0] != b.act_TN[0]).all()
    if family is CHEETAH:  # the cheetah's reset noise follows the seed too
        assert (a.obs_TNO[0] != b.obs_TNO[0]).any()


# The map onto the env's action box ------------------------------------------------------------

def test_point_nav_moves_by_the_clipped_scaled_action():
    sampler = make_sampler(K=2, E=4, horizon=10)
    policy = make_policy(sampler, init_log_std=0.5)  # wide: some actions fall outside [-1, 1]
    batch = sampler.sample(policy, [policy.params()] * 2, goals((0.4, 0.4), (-0.4, 0.2)),
                           seed=0)
    moved = batch.valid_TN[1:]  # step t's move is seen in step t + 1's observation
    step = (batch.obs_TNO[1:] - batch.obs_TNO[:-1]).double()
    want = torch.clamp(0.1 * batch.act_TN[:-1].double(), -0.1, 0.1)
    assert moved.sum() > 20
    torch.testing.assert_close(step[moved], want[moved], rtol=0, atol=1e-6)
    assert (batch.act_TN[:-1][moved].abs() > 1).any()  # so clipping was exercised


def test_point_nav_env_actions_map_the_unit_box_onto_its_action_box():
    sampler = make_sampler()
    act = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.5], [3.0, -2.0]])
    want = torch.tensor([[-0.1, -0.1], [0.1, 0.1], [0.0, 0.05], [0.3, -0.2]])
    torch.testing.assert_close(torch.as_tensor(sampler.env_actions(act)), want, rtol=0,
                               atol=1e-7)


def test_cheetah_env_actions_are_the_identity():
    sampler = make_sampler(CHEETAH, K=1, E=1, horizon=5)
    space = sampler.envs.single_action_space
    assert (space.low == -1).all() and (space.high == 1).all()
    act = 3 * torch.randn(7, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.as_tensor(sampler.env_actions(act)), act)


# Input checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1, 2.0, "2", None, True])
def test_collector_rejects_a_count_that_is_not_a_positive_integer(value):
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        Collector(family=POINT_NAV, num_envs=value)
    collector = Collector(family=POINT_NAV, num_envs=2)
    for name in ("trials_per_task", "episodes_per_trial"):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
            collector.collect(GaussianAgent(make_policy(make_sampler()), [{}]),
                              goals((0.1, 0.1)) * 2, seed=0, **{name: value})


def test_collector_accepts_numpy_integer_counts():
    collector = Collector(family=POINT_NAV, num_envs=np.int64(6))
    assert collector.num_envs == 6 and type(collector.num_envs) is int


def test_a_float64_policy_samples_float64_observations():
    sampler = make_sampler()
    policy = make_policy(sampler).double()
    batch = sampler.sample(policy, [policy.params()] * 3, goals((0.3, 0.1)) * 3, seed=0)
    assert batch.obs_TNO.dtype == torch.float64 and batch.act_TN.dtype == torch.float64


def test_point_nav_sampler_names_the_option_it_does_not_take():
    with pytest.raises(ValueError, match=r"unknown options \['nthread'\].*allowed"):
        Sampler(family=POINT_NAV, num_tasks=2, episodes_per_task=2, nthread=1)


@pytest.mark.parametrize(("num_tasks", "num_params", "message"), [
    (2, 3, "2 tasks x 2 trials each need 4 simulations; this collector has 6"),
    (4, 3, "4 tasks x 2 trials each need 8 simulations; this collector has 6"),
    (3, 2, "2 parameter sets for 3 tasks; give one set, or one per task"),
])
def test_sample_rejects_the_wrong_number_of_tasks_or_params(num_tasks, num_params, message):
    sampler = make_sampler(K=3)
    policy = make_policy(sampler)
    task_list = POINT_NAV.sample(num_tasks, "train", np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        sampler.sample(policy, [policy.params()] * num_params, task_list, seed=0)
    assert sampler.env_steps == 0


# Counters -----------------------------------------------------------------------------------

def test_env_steps_and_sample_seconds_grow_with_each_sample():
    sampler = make_sampler(K=3, E=2, horizon=6)
    policy = constant_policy((0.5, 0.0), log_std=-20.0)
    task_list = goals((0.15, 0.0), (0.05, 0.0), (0.5, 0.5))
    assert sampler.env_steps == 0 and sampler.sample_seconds == 0.0
    first = sampler.sample(policy, [policy.params()] * 3, task_list, seed=0)
    # episodes end early here, so valid steps are fewer than T x N
    assert int(first.valid_TN.sum()) == 3 * 2 + 1 * 2 + 6 * 2 < first.valid_TN.numel()
    assert sampler.env_steps == int(first.valid_TN.sum())
    seconds = sampler.sample_seconds
    assert seconds > 0.0
    second = sampler.sample(policy, [policy.params()] * 3, task_list, seed=1)
    assert sampler.env_steps == int(first.valid_TN.sum()) + int(second.valid_TN.sum())
    assert sampler.sample_seconds > seconds
