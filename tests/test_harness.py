"""The harness on point-nav, where the right answer is known: frozen tasks, record rows,
reference learners, and MAML's inner steps during a trial."""

import numpy as np
import pytest
import torch

import tasks
from fewshot.algos.maml.advantages import with_advantages
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.learners import MAMLAdapter
from fewshot.algos.maml.maml import MAML
from fewshot.collect import Collector
from fewshot.collect.agents import GaussianAgent
from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
from fewshot.eval.learner import fixed_policy
from fewshot.eval.records import FIELDS
from fewshot.nn.policy import GaussianMLP
from fewshot.references import oracle_learner, random_learner

FAMILY = tasks.get("point-nav")
SETTINGS = EvaluationSettings(episodes=3, tasks=6, trials=3, seed=11, horizon=30)


def score(learner, settings=SETTINGS):
    return evaluate(learner, FAMILY, freeze_tasks(FAMILY, settings), settings,
                    run="test-run", run_seed=0)


def curve(records, split):
    rows = records.where(split=split)
    return np.array([rows.where(k=k)["return"].mean() for k in range(SETTINGS.episodes + 1)])


def scripted_oracle():
    return oracle_learner(FAMILY, name="oracle")


def fixed(policy, name="fixed"):
    return fixed_policy(policy, name=name)


def adapter(maml, **options):
    return MAMLAdapter(name="maml", learner=maml, config=maml.config, episodes_per_step=2,
                       **options)


def small_maml(seed=0):
    torch.manual_seed(seed)
    return MAML(policy=GaussianMLP(obs_size=2, action_size=2, hidden_sizes=(16,)),
                config=MAMLConfig(inner_lr=0.1, gamma=0.99, gae_lambda=1.0))


def test_frozen_task_sets_repeat_for_a_seed_and_differ_for_another():
    first = freeze_tasks(FAMILY, SETTINGS)
    again = freeze_tasks(FAMILY, SETTINGS)
    other = freeze_tasks(FAMILY, EvaluationSettings(tasks=6, seed=12))
    assert list(first) == ["test-id", "test-ood"]
    for split in first:
        assert first[split] == again[split]
        assert first[split] != other[split]
        assert all(split in FAMILY.split_of(t) for t in first[split])


def test_records_hold_exactly_one_row_per_split_task_k_and_episode():
    records = score(scripted_oracle())
    expected = 2 * SETTINGS.tasks * SETTINGS.trials * (SETTINGS.episodes + 1)
    assert len(records) == expected
    assert set(FIELDS) <= set(records.columns)
    keys = set(zip(records["split"], records["task"], records["k"], records["episode"],
                   strict=True))
    assert len(keys) == expected
    frozen = freeze_tasks(FAMILY, SETTINGS)
    for split, split_tasks in frozen.items():
        rows = records.where(split=split)
        for t, task in enumerate(split_tasks):
            this = rows.where(task=t)
            assert (this["task.goal_x"] == task.goal_x).all()
            assert (this["task.goal_y"] == task.goal_y).all()
    assert (records["length"] >= 1).all() and (records["length"] <= 30).all()
    assert not records["diverged"].any()


def test_the_oracle_beats_the_random_policy_at_every_k():
    oracle = score(scripted_oracle())
    random = score(random_learner(FAMILY, name="random"))
    for split in ("test-id", "test-ood"):
        assert (curve(oracle, split) > curve(random, split) + 5.0).all()
    # told the goal, the oracle walks straight to it and usually stops there
    assert oracle.where(split="test-id")["terminated"].mean() > 0.9
    # and reaching the goal is the family's declared outcome
    assert (oracle["outcome.success"] == oracle["terminated"]).all()
    assert not random["outcome.success"].any()


def test_a_non_adaptive_policy_has_a_flat_curve_within_noise():
    records = score(fixed(small_maml().policy))
    for split in ("test-id", "test-ood"):
        rows = records.where(split=split)
        per_k = [rows.where(k=k)["return"] for k in range(SETTINGS.episodes + 1)]
        standard_error = np.std(np.concatenate(per_k)) / np.sqrt(per_k[0].size)
        means = np.array([r.mean() for r in per_k])
        assert np.abs(means - means.mean()).max() < 4 * standard_error


def test_zero_episodes_scores_only_zero_shot():
    settings = EvaluationSettings(episodes=0, tasks=2, trials=1, splits=("test-id",))
    records = score(scripted_oracle(), settings)
    assert len(records) == 2 and set(records["k"]) == {0}


def test_maml_takes_one_inner_step_per_block_on_that_blocks_episodes():
    maml = small_maml()
    task_list = FAMILY.sample(3, "test-id", np.random.default_rng(0))
    adaptation = adapter(maml).start(FAMILY, task_list, horizon=10)
    assert adaptation.block == 2
    adaptation.run_block(2, seed=1)
    # the same episodes again, sampled directly, give the same inner step
    collector = Collector(family=FAMILY, num_envs=3 * 2, horizon=10)
    first = collector.collect(GaussianAgent(maml.policy, [maml.policy.params()]), task_list,
                              trials_per_task=2, seed=1)
    expected = maml.adapt_tasks([with_advantages(first, gamma=0.99, gae_lambda=1.0,
                                                 normalize_advantages=True)])
    for got, want in zip(adaptation.params, expected, strict=True):
        for name in want:
            torch.testing.assert_close(got[name], want[name])
    assert any(not torch.equal(adaptation.params[0][n], p)
               for n, p in maml.policy.params().items())
    # a shorter last block ends the trial: sampled, but no further step
    before = adaptation.params
    episodes = adaptation.run_block(1, seed=2)
    assert adaptation.params is before
    assert episodes.returns.shape == (3, 1)


def test_maml_later_steps_take_the_scaled_step_size():
    maml = small_maml()
    task_list = FAMILY.sample(2, "test-id", np.random.default_rng(3))
    adapters = {scale: adapter(maml, later_step_scale=scale) for scale in (1.0, 0.5)}
    adaptations = {}
    for scale, each in adapters.items():
        adaptations[scale] = each.start(FAMILY, task_list, horizon=10)
        adaptations[scale].run_block(2, seed=4)
    # the first step is the run's own whatever the scale
    for a, b in zip(adaptations[1.0].params, adaptations[0.5].params, strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)
    for scale, adaptation in adaptations.items():
        adaptation.run_block(2, seed=5)
        expected = maml.adapt_tasks(adaptation.steps, step_scales=[1.0, scale])
        for got, want in zip(adaptation.params, expected, strict=True):
            for name in want:
                torch.testing.assert_close(got[name], want[name])
    assert any(not torch.allclose(adaptations[1.0].params[0][n], adaptations[0.5].params[0][n])
               for n in adaptations[1.0].params[0])
    with pytest.raises(ValueError, match="later_step_scale must be finite and >= 0"):
        adapter(maml, later_step_scale=-1.0)


def test_maml_record_k_follows_its_blocks():
    settings = EvaluationSettings(episodes=4, tasks=2, trials=2, splits=("test-id",),
                                  horizon=10)
    records = score(adapter(small_maml()), settings)
    assert sorted(set(records["k"])) == [0, 1, 2, 3, 4]
    assert len(records) == 2 * 2 * 5


@pytest.mark.parametrize(("changes", "message"), [
    ({"episodes": -1}, "episodes must be an integer >= 0"),
    ({"tasks": 0}, "tasks must be an integer >= 1"),
    ({"trials": 0}, "trials must be an integer >= 1"),
    ({"splits": "test-id"}, "splits must be a list of split names"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        EvaluationSettings(**changes)


def test_a_split_the_family_does_not_declare_is_refused():
    with pytest.raises(ValueError, match="does not declare the splits \\['test-far'\\]"):
        freeze_tasks(FAMILY, EvaluationSettings(splits=("test-id", "test-far")))


def test_the_oracle_exists_only_where_the_right_answer_is_known():
    with pytest.raises(ValueError, match="family 'cheetah-vel' declares no scripted oracle; "
                       r"families with one: \['point-nav', 'lava-crossing', 'lava-world', "
                       r"'maze', 'lava-jump'\]"):
        oracle_learner(tasks.get("cheetah-vel"), name="oracle")
