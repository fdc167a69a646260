"""Reference learners through the registry (random, oracle, ucb1, thompson) and episode
outcomes from records to reports: outcome rates with intervals in every curve point and
in the tables, outcome columns through compressed CSV, and the whole-trial return.

Letters: T steps, N trials, C choices (arms), K + 1 episodes per trial (k = 0..K).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tasks
from fewshot import cli, registry
from fewshot.collect import Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.eval import report
from fewshot.eval.evaluation import make_learner
from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
from fewshot.eval.learner import FixedAgentLearner
from fewshot.eval.records import Records
from fewshot.nn.policy import LOG_SQRT_2PI
from fewshot.references import (
    CountingAgent,
    CountingLearner,
    RandomPolicy,
    ScriptedAgent,
    thompson,
    ucb1,
    uniform,
)
from fewshot.run.config import RunConfig

POINT_NAV = tasks.get("point-nav")
BANDIT = tasks.get("bandit")


def reference(kind: str, family: str, **options):
    """The learner `fewshot evaluate --learner KIND` scores on a run of `family`."""
    config = RunConfig(algo="maml", family=family)
    return make_learner(kind, config, None, label=kind, options=options)


def arms(*means: float):
    return BANDIT.task_from_dict({f"arm_{i}": m for i, m in enumerate(means)})


# The references through the registry ------------------------------------------------------------

def test_the_registry_offers_the_four_references_and_runs_list_them():
    assert registry.reference_names()[:4] == ["random", "scripted-oracle", "ucb1", "thompson"]
    assert all(registry.reference(name).doc for name in registry.reference_names())


@pytest.mark.parametrize("family", ["bandit", "guessing-game"])
def test_random_on_a_discrete_family_is_a_counting_learner_of_uniform_choices(family):
    learner = reference("random", family)
    assert isinstance(learner, CountingLearner) and learner.rule is uniform
    assert learner.name == "random"


def test_random_counting_choices_are_uniform_over_the_arms():
    N, pulls = 200, 4
    trial_tasks = [arms(0.2, 0.4, 0.5, 0.6, 0.8)] * N
    adaptation = reference("random", "bandit").start(BANDIT, trial_tasks)
    assert adaptation.block == 1
    for k in range(pulls):
        episodes = adaptation.run_block(1, seed=k)
        assert episodes.returns.shape == (N, 1)
        assert set(np.unique(episodes.returns)) <= {0.0, 1.0}
    counts_NC = adaptation.agent.counts
    assert counts_NC.shape == (N, 5) and (counts_NC.sum(1) == pulls).all()
    share_C = counts_NC.sum(0) / (N * pulls)  # 800 pulls: each share 0.2 +- 0.014
    assert np.abs(share_C - 0.2).max() < 0.06
    with pytest.raises(ValueError, match="counting learners run one episode at a time, got 2"):
        adaptation.run_block(2, seed=9)


def test_random_on_a_box_family_is_a_standard_normal_gaussian_agent():
    learner = reference("random", "point-nav")
    assert isinstance(learner, FixedAgentLearner)
    agent = learner.agent
    assert isinstance(agent, GaussianAgent) and isinstance(agent.policy, RandomPolicy)
    assert agent.discrete is False
    collector = Collector(family=POINT_NAV, num_envs=50, horizon=20)
    batch = collector.collect(agent, [POINT_NAV.default_task], trials_per_task=50, seed=0)
    act_TNA = batch.act_TN
    assert act_TNA.shape[1:] == (50, 2)
    # N(0, 1) in the policy's units, whatever the observation: 2000 draws per dimension
    assert act_TNA.mean((0, 1)).abs().max() < 0.1
    assert (act_TNA.std((0, 1)) - 1.0).abs().max() < 0.1
    want_logp_TN = (-0.5 * act_TNA ** 2 - LOG_SQRT_2PI).sum(-1)
    torch.testing.assert_close(batch.logp_TN, want_logp_TN)


@pytest.mark.parametrize("kind", ["ucb1", "thompson"])
@pytest.mark.parametrize("family", ["point-nav", "cheetah-vel"])
def test_counting_references_refuse_box_families_naming_the_learner(kind, family):
    with pytest.raises(ValueError, match=f"learner {kind} needs discrete actions; family "
                                         f"'{family}' has continuous ones"):
        reference(kind, family)


@pytest.mark.parametrize("kind", ["ucb1", "thompson"])
def test_counting_references_serve_discrete_families(kind):
    learner = reference(kind, "bandit")
    assert isinstance(learner, CountingLearner)
    assert learner.rule is {"ucb1": ucb1, "thompson": thompson}[kind]


@pytest.mark.parametrize("family", ["bandit", "guessing-game", "cheetah-vel"])
def test_the_oracle_refuses_a_family_without_one(family):
    with pytest.raises(ValueError, match=rf"family '{family}' declares no scripted oracle; "
                                         r"families with one: \[.*'point-nav'"):
        reference("scripted-oracle", family)


def test_a_reference_takes_no_learner_options_and_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="learner random of a maml run takes no option "
                                         "episodes_per_step; its options: none"):
        reference("random", "bandit", episodes_per_step=2)
    with pytest.raises(ValueError, match=r"learner 'best' is not one that runs of maml offer; "
                                         r"choose from \['trained', 'non-adaptive', 'random', "
                                         r"'scripted-oracle', 'ucb1', 'thompson'"):
        reference("best", "bandit")


def test_the_oracle_reaches_every_point_nav_goal():
    learner = reference("scripted-oracle", "point-nav")
    assert isinstance(learner, FixedAgentLearner) and isinstance(learner.agent, ScriptedAgent)
    # OOD goals lie up to 1 away along each axis: 10 steps of 0.1; the horizon leaves room
    settings = EvaluationSettings(episodes=1, tasks=4, trials=2, seed=0, horizon=25)
    records = evaluate(learner, POINT_NAV, freeze_tasks(POINT_NAV, settings), settings,
                       run="r", run_seed=0)
    assert records.outcomes == ["success"]
    assert records["outcome.success"].dtype == bool
    assert records["outcome.success"].all() and records["terminated"].all()
    assert (records["length"] < 25).all()
    summary = report.summarize(records)["scripted-oracle"]
    for split in ("test-id", "test-ood"):
        for point in summary["splits"][split]["curve"]:
            assert point["outcomes"]["success"] == {"value": 1.0, "low": 1.0, "high": 1.0}


def test_the_oracle_takes_the_fewest_steps_to_each_goal():
    # 0.35 along x takes 4 steps of at most 0.1; (-0.2, 0.25) takes 3
    goals = [POINT_NAV.task_from_dict({"goal_x": 0.35, "goal_y": 0.0}),
             POINT_NAV.task_from_dict({"goal_x": -0.2, "goal_y": 0.25})]
    collector = Collector(family=POINT_NAV, num_envs=2, horizon=10)
    batch = collector.collect(ScriptedAgent(POINT_NAV), goals, seed=0)
    assert batch.episode_lengths()[:, 0].tolist() == [4, 3]
    assert batch.episode_outcomes()["success"].all()


# UCB1 and Thompson sampling over a trial ----------------------------------------------------------

def test_ucb1_tries_each_arm_once_then_takes_the_best_score():
    # arm 2 always pays 1, the others 0. After one pull each (t = 5), arm 2's score is
    # 1 + sqrt(2 ln 5) against sqrt(2 ln 5); at t = 6, 1 + sqrt(2 ln 6 / 2) = 2.34 against
    # sqrt(2 ln 6) = 1.89: arm 2 twice more.
    N, E = 3, 7
    agent = CountingAgent(ucb1, N, 5)
    collector = Collector(family=BANDIT, num_envs=N)
    batch = collector.collect(agent, [arms(0.0, 0.0, 1.0, 0.0, 0.0)] * N, seed=0,
                              episodes_per_trial=E)
    act_TN = batch.act_TN
    assert act_TN.shape == (E, N)
    assert torch.equal(act_TN[:5], torch.arange(5)[:, None].expand(5, N))
    assert torch.equal(act_TN[5:], torch.full((2, N), 2))
    assert 1 + math.sqrt(2 * math.log(6) / 2) > math.sqrt(2 * math.log(6))
    assert agent.counts.tolist() == [[1, 1, 3, 1, 1]] * N
    assert agent.sums.tolist() == [[0, 0, 3, 0, 0]] * N


def test_a_counting_agent_remembers_a_trial_across_collections():
    # the harness runs one episode per block: counts persist, so UCB1 still tries 0..4
    agent = CountingAgent(ucb1, 2, 5)
    collector = Collector(family=BANDIT, num_envs=2)
    task_list = [arms(0.5, 0.5, 0.5, 0.5, 0.5), arms(0.1, 0.2, 0.3, 0.4, 0.5)]
    choices = [collector.collect(agent, task_list, seed=k).act_TN[0].tolist()
               for k in range(5)]
    assert choices == [[k, k] for k in range(5)]
    assert (agent.counts == 1).all()


def test_ucb1_scores_by_hand():
    # counts [3, 1], sums [3, 0], t = 4: 1 + sqrt(2 ln 4 / 3) = 1.96 > sqrt(2 ln 4) = 1.67
    # counts [4, 1], sums [2, 0], t = 5: 0.5 + sqrt(2 ln 5 / 4) = 1.40 < sqrt(2 ln 5) = 1.79
    counts = np.array([[3.0, 1.0], [4.0, 1.0], [2.0, 0.0]])
    sums = np.array([[3.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    rng = np.random.default_rng(0)
    assert ucb1(counts, sums, rng).tolist() == [0, 1, 1]  # an untried arm comes first


def test_thompson_sampling_settles_on_the_paying_arm():
    N, E = 4, 40
    agent = CountingAgent(thompson, N, 5)
    collector = Collector(family=BANDIT, num_envs=N)
    batch = collector.collect(agent, [arms(0.0, 0.0, 0.0, 1.0, 0.0)] * N, seed=1,
                              episodes_per_trial=E)
    late_TN = batch.act_TN[-10:]
    assert (late_TN == 3).float().mean() > 0.8
    assert (batch.act_TN[:5] != 3).any()  # it had to find it


# Outcomes in reports ------------------------------------------------------------------------------

# Two tasks, k = 0..2, two evaluation episodes each: returns and successes by hand.
RETURNS = {0: {0: [-4.0, -2.0], 1: [-1.0, -3.0], 2: [0.0, 0.0]},
           1: {0: [-6.0, -6.0], 1: [-5.0, -3.0], 2: [-2.0, -2.0]}}
SUCCESS = {0: {0: [False, True], 1: [True, True], 2: [True, True]},
           1: {0: [False, False], 1: [False, True], 2: [True, True]}}


def hand_records(split: str = "test-id", learner: str = "hand", *, outcomes: bool = True,
                 shift: float = 0.0) -> Records:
    rows = []
    for task, by_k in RETURNS.items():
        for k, returns in by_k.items():
            for episode, value in enumerate(returns):
                row = {"learner": learner, "run": "r-s0", "run_seed": 0, "split": split,
                       "task": task, "k": k, "episode": episode, "return": value + shift,
                       "length": 5, "terminated": SUCCESS[task][k][episode],
                       "diverged": False}
                if outcomes:
                    row["outcome.success"] = SUCCESS[task][k][episode]
                row["task.goal_x"] = 0.1 * task
                rows.append(row)
    return Records.from_rows(rows)


def test_summarize_puts_outcome_rates_with_intervals_in_every_curve_point():
    records = hand_records("test-id").concat(hand_records("test-ood", shift=-1.0))
    summary = report.summarize(records)["hand"]
    # a task's rate: the share of its episodes with the outcome; then the mean over tasks
    want = {0: (0.5 + 0.0) / 2, 1: (1.0 + 0.5) / 2, 2: 1.0}
    for split in ("test-id", "test-ood"):
        curve = summary["splits"][split]["curve"]
        assert [p["k"] for p in curve] == [0, 1, 2]
        for point in curve:
            rate = point["outcomes"]["success"]
            assert set(rate) == {"value", "low", "high"}
            assert rate["value"] == pytest.approx(want[point["k"]])
            assert 0.0 <= rate["low"] <= rate["value"] <= rate["high"] <= 1.0
        assert curve[0]["outcomes"]["success"]["low"] < curve[0]["outcomes"]["success"][
            "high"]
        assert curve[2]["outcomes"]["success"] == {"value": 1.0, "low": 1.0, "high": 1.0}


def test_records_without_outcomes_give_points_without_rates_and_no_outcome_table():
    summary = report.summarize(hand_records(outcomes=False))
    assert all(p["outcomes"] == {} for p in summary["hand"]["splits"]["test-id"]["curve"])
    assert report.outcome_table(summary) == ""
    assert "Rate of" not in report.markdown_table(summary)


def test_outcome_table_and_markdown_table_show_the_rates():
    records = hand_records("test-id").concat(hand_records("test-ood", shift=-1.0))
    records = records.concat(hand_records("test-id", "other").concat(
        hand_records("test-ood", "other", shift=-1.0)))
    summary = report.summarize(records)
    table = report.outcome_table(summary)
    lines = table.splitlines()
    assert lines[0] == ("| learner | test-id success k=0 | test-id success k=2 | "
                        "test-ood success k=0 | test-ood success k=2 |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| hand", "| other"]
    cells = lines[2].strip("| ").split(" | ")
    assert cells[1].startswith("0.25 [") and cells[2] == "1.00 [1.00, 1.00]"
    markdown = report.markdown_table(summary)
    assert markdown.count("Rate of `success` [95% CI]:") == 2  # one per learner
    assert "| k | test-id | test-ood |" in markdown
    assert "| 1 | 0.75 [" in markdown
    assert "| 2 | 1.00 [1.00, 1.00] | 1.00 [1.00, 1.00] |" in markdown


def test_outcome_columns_survive_compressed_csv_as_booleans(tmp_path):
    records = hand_records()
    path = tmp_path / "records.csv.gz"
    path.write_bytes(records.to_csv_gz())
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    back = Records.read_csv(path)
    assert list(back.columns) == list(records.columns)
    assert back.outcomes == ["success"] and back["outcome.success"].dtype == bool
    np.testing.assert_array_equal(back["outcome.success"], records["outcome.success"])
    np.testing.assert_array_equal(back["return"], records["return"])
    assert back["terminated"].dtype == bool and back.task_params == ["goal_x"]
    assert records.to_csv_gz() == records.to_csv_gz()  # no timestamp inside


def test_trial_return_is_the_mean_over_tasks_of_the_sum_over_k():
    records = hand_records()
    per_task = [sum(np.mean(RETURNS[task][k]) for k in RETURNS[task]) for task in RETURNS]
    assert per_task == [-5.0, -12.0]
    got = report.trial_return(records, "test-id")
    assert got["episodes"] == 3
    assert got["value"] == pytest.approx(np.mean(per_task))  # -8.5
    assert got["low"] <= got["value"] <= got["high"]
    assert report.summarize(records)["hand"]["splits"]["test-id"]["trial_return"] == got


def test_trial_return_of_the_references_on_a_bandit_is_their_total_reward():
    settings = EvaluationSettings(splits=("test-id",), episodes=3, tasks=3, trials=2, seed=0)
    task_sets = freeze_tasks(BANDIT, settings)
    records = evaluate(reference("ucb1", "bandit"), BANDIT, task_sets, settings, run="r",
                       run_seed=0)
    assert records.outcomes == []  # the bandit declares no outcomes
    total = np.mean([records.where(task=t)["return"].sum() / settings.trials
                     for t in range(settings.tasks)])
    assert report.trial_return(records, "test-id")["value"] == pytest.approx(total)


# The command line lists references and outcomes ---------------------------------------------------

def test_fewshot_algorithms_lists_the_reference_learners(capsys):
    assert cli.main(["algorithms"]) == 0
    out = capsys.readouterr().out
    assert "reference learners (no training; any run):" in out
    for name in ("random", "scripted-oracle", "ucb1", "thompson"):
        assert any(line.startswith(name) and registry.reference(name).doc in line
                   for line in out.splitlines()), name


def test_fewshot_families_verbose_shows_outcomes_and_options(capsys):
    assert cli.main(["families", "-v"]) == 0
    out = capsys.readouterr().out.splitlines()
    outcome_lines = [line.strip() for line in out if "outcomes:" in line]
    assert outcome_lines.count("outcomes: success") >= 2  # point-nav and guessing-game
    assert any("option train_instances: an integer, default 256" in line for line in out)
