"""dqn: its maths against loops over members and hand-computed values, its ensemble run
as one vectorized module, the blocker, exact resume, refused settings named, learning
the cliff family (tests/plugins/cliff_plugin.py) and its four learners under the harness.

Letters: M members, B transitions, A choices, O observation size, T steps, N simulations.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch.func import functional_call

import tasks
from fewshot import cli, plugins
from fewshot.algos.dqn import learners
from fewshot.algos.dqn.blocker import balanced_weights
from fewshot.algos.dqn.config import DQNConfig
from fewshot.algos.dqn.dqn import DQN, clip_members, double_q_targets, linear_epsilon, td_loss
from fewshot.algos.dqn.trainer import bootstrap_masks, transitions
from fewshot.collect import Collector, env_spec
from fewshot.collect.agents import QAgent, UniformAgent, allowed_choices
from fewshot.collect.replay import ReplayBuffer
from fewshot.eval.evaluation import evaluate_run, load_evaluation
from fewshot.eval.harness import EvaluationSettings, evaluate
from fewshot.nn.ensemble import Ensemble
from fewshot.nn.policy import mlp
from fewshot.run.checkpoint import load_checkpoint, named_tensors
from fewshot.run.config import RunConfig
from fewshot.run.folder import load_run
from fewshot.run.train import train

PLUGINS = Path(__file__).resolve().parent / "plugins"
UP, DOWN, LEFT, RIGHT = range(4)
TINY = dict(num_envs=4, hidden_sizes=[8], buffer_size=60, batch_size=16, learning_starts=10,
            updates_per_iteration=4, target_update_every=3, epsilon_decay_steps=200)


@pytest.fixture(scope="module")
def cliff():
    """The cliff family, registered from its plugin module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGINS))
        plugins.import_plugin("cliff_plugin")
        yield tasks.get("cliff")


def run_config(iterations: int, **settings) -> RunConfig:
    return RunConfig(algo="dqn", family="cliff", iterations=iterations, checkpoint_every=2,
                     imports=["cliff_plugin"], algo_config=DQNConfig(**settings))


def start_obs(side: int = 1, length: int = 4) -> torch.Tensor:
    """The observation at the start of a cliff episode, [1, 3]."""
    import cliff_plugin

    column = cliff_plugin.start_column(length, side)
    return torch.tensor(cliff_plugin.observe(column, 1, length, side),
                        dtype=torch.float32)[None]


# The family ---------------------------------------------------------------------------

def test_the_cliff_family_batched_equals_its_reference_env(cliff):
    task_list = (cliff.sample(8, "train", np.random.default_rng(0))
                 + cliff.sample(4, "test-ood", np.random.default_rng(1)))
    envs = cliff.make_vec(task_list, seed=0, autoreset_mode="disabled")
    references = [cliff.make_env(task) for task in task_list]
    check_env(references[0].unwrapped, skip_render_check=True)
    obs_NO, _ = envs.reset()
    assert np.array_equal(obs_NO, [env.reset(seed=i)[0] for i, env in enumerate(references)])
    rng, ended_N = np.random.default_rng(1), np.zeros(12, dtype=bool)
    towards_N = np.array([RIGHT if task.side else LEFT for task in task_list])
    seen = set()
    for t in range(cliff.horizon):  # even envs walk the safe path, odd ones at random
        act_N = np.where(np.arange(12) % 2, rng.integers(0, 4, 12), UP if t == 0 else towards_N)
        obs_NO, rew_N, term_N, _, info = envs.step(act_N)
        for n in np.flatnonzero(~ended_N):
            obs, rew, term, _, ref_info = references[n].step(act_N[n])
            assert np.array_equal(obs_NO[n], obs) and rew_N[n] == rew and term_N[n] == term
            for key, value in ref_info.items():
                assert info[key][n] == value, key
            seen |= {key for key, value in ref_info.items() if key.startswith("outcome")
                     and value}
        ended_N |= term_N
    assert seen == {"outcome_catastrophe", "outcome_solved"}


# Maths --------------------------------------------------------------------------------

def test_epsilon_falls_linearly_then_stays():
    values = [linear_epsilon(s, start=1.0, end=0.1, decay_steps=100) for s in (0, 50, 100, 500)]
    assert values == pytest.approx([1.0, 0.55, 0.1, 0.1])


def q_ensemble(members: int, seed: int = 0) -> Ensemble:
    torch.manual_seed(seed)
    return Ensemble(lambda: mlp([3, 8, 4], "relu"), members)


def sample(B: int = 10, members: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, 3, generator=g), "act": torch.randint(4, (B,), generator=g),
            "rew": torch.randn(B, generator=g), "next_obs": torch.randn(B, 3, generator=g),
            "terminated": torch.rand(B, generator=g) < 0.3,
            "complete": torch.rand(B, generator=g) < 0.8,
            "mask": torch.rand(B, members, generator=g) < 0.5}


def test_double_q_targets_pick_with_the_online_member_and_value_with_its_target():
    q, target, s = q_ensemble(3, seed=0), q_ensemble(3, seed=1), sample()
    y_MB = double_q_targets(q, target, s["next_obs"], s["rew"], s["terminated"], 0.9)
    for m in range(3):
        for b in range(10):  # one member, one transition at a time
            online = functional_call(q.module, q.member(m), (s["next_obs"][b],))
            valued = functional_call(target.module, target.member(m), (s["next_obs"][b],))
            best = int(online.argmax())
            want = s["rew"][b] + (0.0 if s["terminated"][b] else 0.9 * valued[best])
            torch.testing.assert_close(y_MB[m, b], torch.as_tensor(want).float())


def test_td_loss_gives_each_member_the_gradient_of_its_own_masked_huber_loss():
    q, target, s = q_ensemble(3), q_ensemble(3, seed=1), sample()
    loss, _ = td_loss(q, target, s, gamma=0.9)
    loss.backward()
    y_MB = double_q_targets(q, target, s["next_obs"], s["rew"], s["terminated"], 0.9)
    for m in range(3):
        own = {n: p.detach().clone().requires_grad_() for n, p in q.member(m).items()}
        q_B = functional_call(q.module, own, (s["obs"],))[torch.arange(10), s["act"]]
        kept = (s["mask"][:, m] & s["complete"]).nonzero()[:, 0]
        errors = (q_B[kept] - y_MB[m, kept]).abs()
        huber = torch.where(errors < 1, 0.5 * errors ** 2, errors - 0.5)  # delta 1
        (huber.sum() / max(len(kept), 1)).backward()
        for name, p in q.params().items():
            torch.testing.assert_close(p.grad[m], own[name].grad, msg=f"{m} {name}")


def test_a_member_whose_mask_keeps_nothing_gets_no_gradient():
    q, target, s = q_ensemble(3), q_ensemble(3, seed=1), sample()
    s["mask"][:, 1] = False
    td_loss(q, target, s, gamma=0.9)[0].backward()
    assert all(not p.grad[1].any() and p.grad[0].any() for p in q.params().values())


def test_each_members_gradient_is_clipped_by_its_own_norm():
    q = q_ensemble(3)
    (q(torch.randn(5, 3, generator=torch.Generator().manual_seed(0))).sum(-1)
     * torch.tensor([1.0, 100.0, 0.001])[:, None]).sum().backward()
    before = [{n: p.grad[m].clone() for n, p in q.params().items()} for m in range(3)]
    norms = clip_members(q, max_norm=1.0)
    for m in range(3):
        module = mlp([3, 8, 4], "relu")
        for name, p in module.named_parameters():
            p.grad = before[m][name].clone()
        want = torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        torch.testing.assert_close(norms[m], want)
        for name, p in module.named_parameters():
            torch.testing.assert_close(q.params()[name].grad[m], p.grad)
    assert norms[1] > 1 > norms[2]  # only the large one was scaled down


def test_transitions_link_each_step_to_the_next_and_know_which_targets_are_complete(cliff):
    collector = Collector(family=cliff, num_envs=6, horizon=5)  # short: some episodes cut
    batch = collector.collect(UniformAgent(env_spec(cliff)),
                              cliff.sample(6, "train", np.random.default_rng(0)), seed=2)
    steps = transitions(batch, "catastrophe")
    assert len(steps["act"]) == int(batch.valid_TN.sum())
    t_B, n_B = batch.valid_TN.nonzero(as_tuple=True)  # time-major, as transitions are
    for b, (t, n) in enumerate(zip(t_B.tolist(), n_B.tolist(), strict=True)):
        assert torch.equal(steps["obs"][b], batch.obs_TNO[t, n])
        assert bool(steps["catastrophe"][b]) == bool(batch.outcomes["catastrophe"][t, n])
        goes_on = t + 1 < batch.valid_TN.shape[0] and bool(batch.valid_TN[t + 1, n])
        assert bool(steps["complete"][b]) == (goes_on or bool(batch.terminated_TN[t, n]))
        if goes_on:
            assert torch.equal(steps["next_obs"][b], batch.obs_TNO[t + 1, n])
    cut = batch.truncated_TN & ~batch.terminated_TN & batch.valid_TN
    assert cut.any() and int((~steps["complete"]).sum()) == int(cut.sum())


def test_bootstrap_masks_are_per_member_and_all_true_for_one_member():
    g = torch.Generator().manual_seed(0)
    assert bootstrap_masks(5, 1, 0.5, g).all()
    mask_BM = bootstrap_masks(4000, 3, 0.3, g)
    assert mask_BM.shape == (4000, 3)
    assert mask_BM.float().mean(0).sub(0.3).abs().max() < 0.03
    assert not torch.equal(mask_BM[:, 0], mask_BM[:, 1])


# The ensemble: one vectorized module --------------------------------------------------

def test_members_differ_in_init_and_in_their_bootstrap_of_the_data(cliff, tmp_path):
    out = tmp_path / "run"
    train(run_config(2, **{**TINY, "ensemble_size": 3}), out, progress=False)
    state = load_checkpoint(out)
    weights = state["learner"]["q"]["stacked.0"]
    assert weights.shape[0] == 3
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    mask_BM = state["trainer"]["buffer"]["storage"]["mask"]
    assert mask_BM.shape[1] == 3
    assert all(not torch.equal(mask_BM[:, a], mask_BM[:, b]) for a, b in ((0, 1), (1, 2)))


def test_an_update_runs_all_members_in_the_same_few_vectorized_calls(cliff, monkeypatch):
    calls = []
    forward = Ensemble.forward
    monkeypatch.setattr(Ensemble, "forward", lambda self, *x: calls.append(1) or
                        forward(self, *x))
    counts = {}
    for members in (1, 3):
        torch.manual_seed(0)
        model = DQN(DQNConfig(ensemble_size=members, hidden_sizes=[8]), env_spec(cliff))
        calls.clear()
        model.td_step(sample(16, members))  # cliff's observations are 3 numbers too
        counts[members] = len(calls)
        assert all(p.shape[0] == members for p in model.q.parameters())
    assert counts[1] == counts[3] == 3  # Q(s), Q(s') and the target's Q(s'), for all members


# What dqn added to collect/: weighted replay, the Q agent --------------------------------

def test_weighted_sampling_draws_rows_in_proportion_to_their_weights():
    buffer = ReplayBuffer(8)
    buffer.add(i=torch.arange(6))
    assert torch.equal(buffer.stored("i"), torch.arange(6))
    weights_B = torch.tensor([0.0, 1.0, 0.0, 0.0, 3.0, 0.0])
    drawn = buffer.sample(4000, torch.Generator().manual_seed(0), weights=weights_B)["i"]
    assert set(drawn.tolist()) == {1, 4}
    assert (drawn == 4).float().mean() == pytest.approx(0.75, abs=0.03)
    for bad in (torch.zeros(6), torch.ones(5), -weights_B):
        with pytest.raises(ValueError, match=r"weights must be \[6\] \(one per stored"):
            buffer.sample(1, torch.Generator(), weights=bad)
    with pytest.raises(ValueError, match=r"no field 'j'; it holds \['i'\]"):
        buffer.stored("j")


def constant_q(values_MA: list[list[float]]) -> Ensemble:
    """An ensemble of Q-networks whose member m gives values_MA[m] whatever it sees."""
    ensemble = Ensemble(lambda: mlp([3, 4, 4], "relu"), len(values_MA))
    with torch.no_grad():
        params = list(ensemble.params().values())
        for p in params:
            p.zero_()
        params[-1][:] = torch.tensor(values_MA)
    return ensemble


def test_a_drawn_member_acts_for_a_whole_episode_and_a_new_one_is_drawn_for_the_next(cliff):
    # member m prefers choice m (UP, DOWN, LEFT); from the start, none of them ends an episode
    q = constant_q([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    collector = Collector(family=cliff, num_envs=8, horizon=3)
    task_list = [cliff.task_from_dict({"side": 1, "length": 4})] * 8
    batch = collector.collect(QAgent(q, member="draw"), task_list, episodes_per_trial=5,
                              seed=0)
    act_EN3 = batch.act_TN.reshape(5, 3, 8).transpose(1, 2)  # [episode, trial, step]
    assert (act_EN3 == act_EN3[..., :1]).all()  # one member per episode
    assert set(act_EN3[..., 0].flatten().tolist()) == {UP, DOWN, LEFT}  # each member drawn
    assert (act_EN3[1:, :, 0] != act_EN3[:-1, :, 0]).any()  # redrawn between episodes
    mean = collector.collect(QAgent(q, member="mean"), task_list, seed=0)
    assert (mean.act_TN == UP).all()  # ties go to the first choice
    member = collector.collect(QAgent(q, member=2), task_list, seed=0)
    assert (member.act_TN == LEFT).all()
    explore = collector.collect(QAgent(q, member=0, epsilon=1.0), task_list, seed=0)
    assert set(explore.act_TN[explore.valid_TN].tolist()) == {UP, DOWN, LEFT, RIGHT}


def test_a_q_agent_refuses_a_member_epsilon_or_threshold_out_of_range():
    q = constant_q([[0.0] * 4] * 2)
    for bad, message in (({"member": 2}, r"member must be 'mean', 'draw' or an index in "
                                         r"\[0, 2\), got 2"),
                         ({"member": "vote"}, "member must be"),
                         ({"epsilon": 1.5}, r"epsilon must be in \[0, 1\], got 1.5"),
                         ({"threshold": -1}, r"threshold must be in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            QAgent(q, **bad)


# The blocker --------------------------------------------------------------------------

def test_allowed_choices_block_the_risky_ones_or_keep_the_least_risky():
    risk_NA = torch.tensor([[0.1, 0.9, 0.2, 0.6], [0.8, 0.9, 0.7, 0.7], [0.5, 0.5, 0.5, 0.5]])
    assert allowed_choices(risk_NA, 0.5).tolist() == [[True, False, True, False],
                                                      [False, False, True, True],
                                                      [True, True, True, True]]


def test_balanced_weights_give_each_class_half_the_draws():
    label_B = torch.tensor([True, False, False, False, False])
    weights_B = balanced_weights(label_B)
    assert weights_B[label_B].sum() == pytest.approx(weights_B[~label_B].sum())
    assert torch.equal(balanced_weights(torch.zeros(3, dtype=torch.bool)), torch.ones(3))


def set_networks(model: DQN, *, q_A: list[float], risk_logit_A: list[float]) -> None:
    """Constant networks: every member's Q-values are q_A, the blocker's logits risk_logit_A,
    whatever the observation."""
    with torch.no_grad():
        for params, bias in ((list(model.q.params().values()), q_A),  # biases [M, A]
                             (list(model.blocker.network.parameters()), risk_logit_A)):
            for p in params:
                p.zero_()
            params[-1][:] = torch.tensor(bias)  # the last layer's bias


def test_the_blocked_learner_takes_the_best_unblocked_choice_and_avoids_the_cliff(cliff):
    torch.manual_seed(0)
    config = DQNConfig(hidden_sizes=[8])
    model = DQN(config, env_spec(cliff))
    # Q prefers RIGHT, then UP; the blocker says RIGHT is catastrophic
    set_networks(model, q_A=[0.5, 0.0, 0.0, 1.0], risk_logit_A=[-9.0, -9.0, -9.0, 9.0])
    obs = start_obs(side=1)
    assert QAgent(model.q, member=0).act(obs).act.tolist() == [RIGHT]
    blocked = QAgent(model.q, member=0, blocker=model.blocker.network, threshold=0.5)
    assert blocked.act(obs).act.tolist() == [UP]
    # every choice blocked: the least likely catastrophic one, whatever Q says
    set_networks(model, q_A=[0.5, 0.0, 0.0, 1.0], risk_logit_A=[3.0, 1.0, 2.0, 9.0])
    assert blocked.act(obs).act.tolist() == [DOWN]
    # under the harness, on corridors whose goal is to the right (RIGHT at the start falls)
    set_networks(model, q_A=[0.5, 0.0, 0.0, 1.0], risk_logit_A=[-9.0, -9.0, -9.0, 9.0])
    task_sets = {"right": [cliff.task_from_dict({"side": 1, "length": n}) for n in (4, 5, 6)]}
    settings = EvaluationSettings(splits=(), episodes=0, trials=2)
    rates = {}
    for kind, factory in (("trained", learners.trained), ("ensemble", learners.ensemble),
                          ("blocked", learners.blocked),
                          ("blocked-ensemble", learners.blocked_ensemble)):
        records = evaluate(factory(model, config, name=kind), cliff, task_sets, settings,
                           run="hand-set", run_seed=0)
        rates[kind] = records["outcome.catastrophe"].mean()
    assert rates == {"trained": 1.0, "ensemble": 1.0, "blocked": 0.0, "blocked-ensemble": 0.0}


def test_without_the_catastrophe_outcome_the_blocker_is_off_and_its_learners_say_why():
    bandit = tasks.get("bandit")  # declares no outcomes
    model = DQN(DQNConfig(hidden_sizes=[8]), env_spec(bandit))
    assert model.blocker is None and "blocker" not in model.state_dict()
    assert learners.trained(model, DQNConfig(), name="t").name == "t"
    for factory in (learners.blocked, learners.blocked_ensemble):
        with pytest.raises(ValueError, match=r"needs the blocker, which is off in this run: "
                                             r"dqn.catastrophe_outcome is 'catastrophe', "
                                             r"and the family flags the outcomes \[\]"):
            factory(model, DQNConfig(), name="b")


# Exact resume -------------------------------------------------------------------------

def test_a_resumed_run_ends_with_the_same_weights_and_buffer_bit_for_bit(cliff, tmp_path):
    settings = {**TINY, "ensemble_size": 2}
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(run_config(4, **settings), whole, progress=False)
    train(run_config(2, **settings), split, progress=False)
    train(run_config(4, **settings), split, resume=True, progress=False)
    a, b = load_checkpoint(whole), load_checkpoint(split)
    assert a["env_steps"] == b["env_steps"] > 0
    assert a["learner"]["gradient_steps"] == b["learner"]["gradient_steps"] == 16
    for part in ("learner", "trainer"):
        tensors_a, tensors_b = dict(named_tensors(a[part])), dict(named_tensors(b[part]))
        assert tensors_a.keys() == tensors_b.keys()
        for name, tensor in tensors_a.items():
            assert torch.equal(tensor, tensors_b[name]), name
    buffer_a, buffer_b = a["trainer"]["buffer"], b["trainer"]["buffer"]
    assert (buffer_a["size"], buffer_a["position"]) == (buffer_b["size"], buffer_b["position"])
    assert buffer_a["size"] == 60  # the ring wrapped
    assert {"q.stacked.0", "target.stacked.0", "blocker.network.0.weight"} <= set(
        dict(named_tensors(a["learner"])))

    def rows(folder):
        with (folder / "metrics.csv").open() as f:
            return [{k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k}
                    for row in csv.DictReader(f)]
    assert rows(whole) == rows(split)


# Refused settings ---------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--dqn.ensemble_size", "0"], "dqn.ensemble_size must be an integer >= 1, got 0"),
    (["--dqn.epsilon_start", "1.5"], "dqn.epsilon_start must be in [0, 1], got 1.5"),
    (["--dqn.epsilon_end", "-0.1"], "dqn.epsilon_end must be in [0, 1], got -0.1"),
    (["--dqn.bootstrap_prob", "0"], "dqn.bootstrap_prob must be in (0, 1]"),
    (["--dqn.learning_starts", "20", "--dqn.buffer_size", "10"],
     "dqn.learning_starts must be at most dqn.buffer_size (10, the transitions the "
     "buffer keeps), got 20"),
    (["--dqn.block_threshold", "2"], "dqn.block_threshold must be in [0, 1]"),
    (["--family", "point-nav"], "dqn needs Discrete actions; family 'point-nav' has Box"),
])
def test_bad_settings_fail_before_any_work_naming_the_field(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", "--algo", "dqn", "--family", "bandit", *args, "--out", str(out),
                  "--no-progress"])
    assert message in capsys.readouterr().err + str(stopped.value)
    assert not out.exists()


# Learning, and the four learners under the harness ------------------------------------

@pytest.fixture(scope="module")
def learned(cliff, tmp_path_factory):
    """A run of 40 iterations, 3 members, on cliff (about 5 s)."""
    out = tmp_path_factory.mktemp("dqn") / "dqn-cliff-s0"
    config = run_config(40, hidden_sizes=[32], ensemble_size=3, gamma=0.9, batch_size=64,
                        learning_starts=200, updates_per_iteration=32, target_update_every=50,
                        epsilon_decay_steps=2000)
    train(config, out, progress=False)
    return out


def test_dqn_learns_to_walk_around_the_cliff_and_its_blocker_learns_the_edge(learned):
    with (learned / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["catastrophe_rate"]) > 0.8  # random steps fall
    _, model = load_run(learned)
    for side in (0, 1):  # at the start, the step towards the goal falls; up is safe
        towards = RIGHT if side else LEFT
        risk_A = model.blocker.probability(start_obs(side))[0]
        assert risk_A[towards] > 0.5 > risk_A[UP], (side, risk_A)


def test_the_four_learners_are_scored_through_the_harness(learned):
    settings = EvaluationSettings(splits=("test-id",), episodes=0, tasks=6, trials=2)
    solved = {}
    for kind in ("trained", "ensemble", "blocked", "blocked-ensemble"):
        folder = evaluate_run(learned, settings, learner=kind, progress=False)
        assert folder.name == ("evaluation" if kind == "trained" else f"evaluation-{kind}")
        records = load_evaluation(folder)[0]
        assert set(records.unique("learner")) == {
            "dqn-cliff" if kind == "trained" else f"dqn-cliff-{kind}"}
        solved[kind] = records["outcome.solved"].mean()
        assert records["outcome.catastrophe"].mean() == 0, kind
    assert min(solved.values()) >= 0.9, solved


def test_dqn_learns_a_few_lava_world_levels(tmp_path):
    """Plain DQN on 3 small lava-world levels, fixed seed, 120 iterations (about 15 s):
    greedy, it solves its training levels, which random steps rarely do."""
    out = tmp_path / "dqn-lava-world-s0"
    config = RunConfig(algo="dqn", family="lava-world", iterations=120, checkpoint_every=120,
                       family_options={"train_levels": 3, "size": 7},
                       algo_config=DQNConfig(hidden_sizes=[64], gamma=0.9, batch_size=64,
                                             learning_starts=500, target_update_every=100,
                                             epsilon_decay_steps=4000))
    train(config, out, progress=False)
    with (out / "metrics.csv").open() as f:
        first = next(csv.DictReader(f))
    assert float(first["solved_rate"]) < 0.5  # random steps
    settings = EvaluationSettings(splits=("train",), episodes=0, tasks=30, trials=1)
    records = load_evaluation(evaluate_run(out, settings, progress=False))[0]
    assert records["outcome.solved"].mean() >= 0.9
