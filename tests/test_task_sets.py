"""Task sets: frozen splits that cover every discrete value, set codes, task-set files, and
`fewshot evaluate RUN --task-set FILE.json` end to end on a tiny point-nav MAML run.

Letters: M tasks in a set, J evaluation episodes per task, K episodes seen (k = 0..K).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import tasks
from fewshot import cli
from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
from fewshot.eval.records import Records
from fewshot.eval.task_sets import check_task_sets, load_task_sets, set_code, task_sets_from_json
from fewshot.references import random_learner

POINT_NAV = tasks.get("point-nav")
GAIT = tasks.get("cheetah-gait")
GUESSING = tasks.get("guessing-game")
SEEDS = range(6)

TRAIN = ["train", "--family", "point-nav", "--iterations", "1", "--maml.meta_batch_size", "2",
         "--maml.episodes_per_task", "2", "--horizon", "10", "--maml.hidden_sizes", "[8]",
         "--no-progress"]
SMALL = ["--episodes", "1", "--trials", "2", "--tasks", "2", "--no-progress"]
NEAR = [{"goal_x": 0.05, "goal_y": 0.0}, {"goal_x": -0.1, "goal_y": 0.1}]
FAR = [{"goal_x": 0.9, "goal_y": -0.8}]


def frozen(family, split: str, count: int, seed: int) -> list:
    settings = EvaluationSettings(splits=(split,), tasks=count, seed=seed)
    return freeze_tasks(family, settings)[split]


def goal(x: float, y: float):
    return POINT_NAV.task_from_dict({"goal_x": x, "goal_y": y})


# Frozen splits cover every discrete value ---------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_cheetah_gait_test_id_with_eight_tasks_has_each_of_its_gaits_twice(seed):
    gaits = [task.gait for task in frozen(GAIT, "test-id", 8, seed)]
    assert Counter(gaits) == {0: 2, 1: 2, 2: 2, 3: 2}  # run, back-leg, front-leg, high-torso
    assert gaits != sorted(gaits)  # stratified, yet in shuffled order


@pytest.mark.parametrize("seed", SEEDS)
def test_cheetah_gait_test_id_with_three_tasks_has_three_distinct_gaits(seed):
    gaits = [task.gait for task in frozen(GAIT, "test-id", 3, seed)]
    assert len(set(gaits)) == 3 and set(gaits) <= {0, 1, 2, 3}


def test_which_gait_three_tasks_leave_out_depends_on_the_seed():
    left_out = {frozenset({0, 1, 2, 3} - {t.gait for t in frozen(GAIT, "test-id", 3, seed)})
                for seed in range(12)}
    assert len(left_out) > 1


def test_cheetah_gait_test_ood_is_all_hop():
    assert {task.gait for task in frozen(GAIT, "test-ood", 5, 0)} == {4}


def test_without_cover_a_plain_sample_of_four_gaits_often_misses_one():
    # what cover guards against: four uniform draws of four gaits rarely hit them all
    missed = [len({t.gait for t in GAIT.sample(4, "test-id", np.random.default_rng(s))}) < 4
              for s in range(10)]
    assert sum(missed) >= 5
    covered = [len({t.gait for t in GAIT.sample(4, "test-id", np.random.default_rng(s),
                                                cover=True)}) == 4 for s in range(10)]
    assert all(covered)


@pytest.mark.parametrize("split", ["test-id", "test-ood"])
@pytest.mark.parametrize("seed", SEEDS)
def test_guessing_game_frozen_splits_cover_all_four_labels(split, seed):
    four = frozen(GUESSING, split, 4, seed)
    assert sorted(task.label for task in four) == [0, 1, 2, 3]
    six = Counter(task.label for task in frozen(GUESSING, split, 6, seed))
    assert set(six) == {0, 1, 2, 3} and sorted(six.values()) == [1, 1, 2, 2]
    assert all(split in GUESSING.split_of(task) for task in four)
    assert len({task.instance for task in four}) == 4  # instances still drawn at random


def test_guessing_game_train_split_covers_all_four_labels():
    # A family option: 8 training observations per class, 32 (label, instance) points in
    # all. Four frozen training tasks can hold every label, so they must.
    family = tasks.get("guessing-game", train_instances=8)
    labels = {}
    for seed in SEEDS:
        four = frozen(family, "train", 4, seed)
        assert all("train" in family.split_of(task) for task in four)
        labels[seed] = sorted(task.label for task in four)
    assert labels == {seed: [0, 1, 2, 3] for seed in SEEDS}


@pytest.mark.parametrize("split", ["train", "test-id", "test-ood"])
@pytest.mark.parametrize("family_name", ["point-nav", "bandit"])
def test_cover_leaves_continuous_families_unchanged(family_name, split):
    family = tasks.get(family_name)
    for seed in (0, 1):
        plain = family.sample(7, split, np.random.default_rng(seed))
        covered = family.sample(7, split, np.random.default_rng(seed), cover=True)
        assert covered == plain
    settings = EvaluationSettings(splits=(split,), tasks=7, seed=3)
    assert freeze_tasks(family, settings)[split] == family.sample(
        7, split, np.random.default_rng([3, set_code(split)]))


# Set codes -------------------------------------------------------------------------------------

def test_declared_splits_have_codes_zero_one_two():
    assert [set_code(s) for s in ("train", "test-id", "test-ood")] == [0, 1, 2]


def test_other_set_names_have_distinct_codes_of_their_own():
    codes = [set_code(name) for name in ("near", "far", "near-origin", "Near", "test_id")]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & {0, 1, 2}
    assert all(isinstance(code, int) and code >= 0 for code in codes)
    assert set_code("near") == set_code("near")


def test_set_codes_are_the_same_in_another_process():
    # seeds derive from them, so they may not depend on Python's per-process string hash
    names = ["near", "far-ood", "my set"]
    script = ("import json; from fewshot.eval.task_sets import set_code; "
              f"print(json.dumps([set_code(n) for n in {names!r}]))")
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert json.loads(out.stdout) == [set_code(n) for n in names]


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_set_name_that_is_not_a_non_empty_string_is_refused(name):
    with pytest.raises(ValueError, match="a task set's name must be a non-empty string"):
        set_code(name)


def test_a_sets_name_seeds_its_noise():
    settings = EvaluationSettings(splits=(), episodes=1, trials=2, seed=0, horizon=5)
    learner = random_learner(POINT_NAV, name="random")
    goals = [goal(0.2, 0.1), goal(-0.3, 0.2)]

    def returns(name: str) -> np.ndarray:
        return evaluate(learner, POINT_NAV, {name: goals}, settings, run="r",
                        run_seed=0)["return"]

    assert np.array_equal(returns("near"), returns("near"))
    assert not np.array_equal(returns("near"), returns("close"))


# Task-set files ----------------------------------------------------------------------------------

def test_a_task_set_file_gives_named_lists_of_the_familys_tasks(tmp_path):
    path = tmp_path / "sets.json"
    path.write_text(json.dumps({"family": "point-nav", "sets": {"near": NEAR,
                                                                "test-ood": FAR}}))
    sets = load_task_sets(POINT_NAV, path)
    assert list(sets) == ["near", "test-ood"]
    assert sets["near"] == [goal(0.05, 0.0), goal(-0.1, 0.1)]
    assert sets["test-ood"] == [goal(0.9, -0.8)]
    # the family key is optional
    assert task_sets_from_json(POINT_NAV, {"sets": {"near": NEAR}}, source="s") == {
        "near": sets["near"]}


@pytest.mark.parametrize(("data", "message"), [
    ([NEAR], "a task-set file is a JSON object with \"sets\", got list"),
    ({"sets": {"near": NEAR}, "tasks": 3}, r"unknown keys \['tasks'\]"),
    ({"family": "bandit", "sets": {"near": NEAR}},
     "its tasks are of family 'bandit', the run's family is 'point-nav'"),
    ({"sets": {}}, "\"sets\" must map set names to lists of tasks"),
    ({"sets": {"near": NEAR[0]}}, "set 'near' must be a list of tasks, got dict"),
    ({"sets": {"near": [{"goal_x": 0.1, "goal_z": 0.0}]}},
     r"set 'near', task 0: a 'point-nav' task has parameters \['goal_x', 'goal_y'\]; unknown "
     r"\['goal_z'\], missing \['goal_y'\]"),
    ({"sets": {"near": [{"goal_x": 2.0, "goal_y": 0.0}]}},
     r"set 'near', task 0: task parameter 'goal_x' must be in \[-1.0, 1.0\], got 2.0"),
    ({"sets": {"near": []}}, "task set 'near' is empty"),
    ({"sets": {"test-id": [{"goal_x": 0.1, "goal_y": 0.1}, {"goal_x": 0.8, "goal_y": 0.8}]}},
     r"task set 'test-id', task 1 \(goal_x=0.8, goal_y=0.8\) lies outside 'point-nav''s "
     r"declared test-id split \(it is in \['test-ood'\]\)"),
], ids=["not-an-object", "unknown-key", "other-family", "no-sets", "set-not-a-list",
        "unknown-parameter", "out-of-range", "empty-set", "outside-its-split"])
def test_a_bad_task_set_file_is_refused_naming_the_problem(tmp_path, data, message):
    path = tmp_path / "sets.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        load_task_sets(POINT_NAV, path)


def test_a_missing_or_unreadable_task_set_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no task-set file at"):
        load_task_sets(POINT_NAV, tmp_path / "missing.json")
    path = tmp_path / "broken.json"
    path.write_text("{\"sets\": ")
    with pytest.raises(ValueError, match=r"broken\.json is not a JSON task-set file"):
        load_task_sets(POINT_NAV, path)


def test_any_name_but_a_declared_splits_is_free_to_hold_any_task():
    # a training goal filed under test-ood is refused; under another name it is accepted
    inside = [goal(0.1, 0.1)]
    check_task_sets(POINT_NAV, {"ood-ish": inside, "test-id": inside})
    with pytest.raises(ValueError, match=r"task set 'test-ood', task 0 \(goal_x=0.1, "
                                         r"goal_y=0.1\) lies outside"):
        check_task_sets(POINT_NAV, {"test-ood": inside})
    with pytest.raises(ValueError, match="no task sets to evaluate on"):
        check_task_sets(POINT_NAV, {})
    with pytest.raises(ValueError, match=r"task set 'near', task 0: family 'point-nav' takes "
                                         r"PointNavTask tasks"):
        check_task_sets(POINT_NAV, {"near": [GAIT.default_task]})


# fewshot evaluate --task-set, end to end ---------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "maml-point-nav-s0"
    assert cli.main([*TRAIN, "--out", str(out)]) == 0
    return out


def write_sets(tmp_path, sets: dict, family: str = "point-nav"):
    path = tmp_path / "sets.json"
    path.write_text(json.dumps({"family": family, "sets": sets}))
    return path


def test_evaluate_scores_exactly_the_files_sets_and_stores_them(run_dir, tmp_path):
    path = write_sets(tmp_path, {"near": NEAR, "test-ood": FAR})
    out = tmp_path / "evaluation"
    assert cli.main(["evaluate", str(run_dir), "--task-set", str(path), *SMALL,
                     "--out", str(out)]) == 0
    records = Records.read_csv(out / "records.csv.gz")
    assert records.unique("split") == ["near", "test-ood"]  # no frozen test-id
    for name, entries in (("near", NEAR), ("test-ood", FAR)):
        rows = records.where(split=name)
        assert len(rows) == len(entries) * 2 * 2  # M x J x (K + 1)
        for t, entry in enumerate(entries):
            this = rows.where(task=t)
            assert (this["task.goal_x"] == entry["goal_x"]).all()
            assert (this["task.goal_y"] == entry["goal_y"]).all()
    assert records.outcomes == ["success"]
    stored = json.loads((out / "tasks.json").read_text())
    assert stored["family"] == "point-nav"
    assert stored["splits"] == {"near": NEAR, "test-ood": FAR}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["learners"]["maml-point-nav"]["splits"]) == {"near", "test-ood"}


def test_evaluate_adds_the_files_sets_to_the_splits_asked_for(run_dir, tmp_path):
    path = write_sets(tmp_path, {"near": NEAR})
    out = tmp_path / "evaluation"
    assert cli.main(["evaluate", str(run_dir), "--task-set", str(path), "--splits", "test-id",
                     *SMALL, "--out", str(out)]) == 0
    records = Records.read_csv(out / "records.csv.gz")
    assert records.unique("split") == ["test-id", "near"]
    assert len(records.where(split="test-id")) == 2 * 2 * 2  # --tasks 2
    stored = json.loads((out / "tasks.json").read_text())
    assert list(stored["splits"]) == ["test-id", "near"]
    assert stored["splits"]["near"] == NEAR


def test_an_evaluations_tasks_json_can_be_given_back_as_a_task_set(run_dir, tmp_path):
    # task_sets.py: "an evaluation's tasks.json, whose key is "splits", is read the same way"
    out = tmp_path / "evaluation"
    assert cli.main(["evaluate", str(run_dir), "--splits", "test-id", *SMALL,
                     "--out", str(out)]) == 0
    stored = json.loads((out / "tasks.json").read_text())
    sets = load_task_sets(POINT_NAV, out / "tasks.json")
    assert {name: [POINT_NAV.task_to_dict(t) for t in ts] for name, ts in sets.items()} == \
        stored["splits"]


@pytest.mark.parametrize(("sets", "family", "extra", "message"), [
    ({"test-id": [NEAR[0], {"goal_x": 0.8, "goal_y": 0.8}]}, "point-nav", [],
     r"task set 'test-id', task 1 \(goal_x=0.8, goal_y=0.8\) lies outside"),
    ({"near": [{"goal_x": 0.1, "goal_y": 0.0, "goal_z": 0.0}]}, "point-nav", [],
     r"set 'near', task 0: a 'point-nav' task has parameters .*unknown \['goal_z'\]"),
    ({"near": NEAR}, "cheetah-vel", [],
     "its tasks are of family 'cheetah-vel', the run's family is 'point-nav'"),
    ({"test-ood": FAR}, "point-nav", ["--splits", "test-ood"],
     r"task sets \['test-ood'\] are named like the frozen splits"),
], ids=["outside-its-split", "unknown-parameter", "other-family", "clash-with-splits"])
def test_evaluate_refuses_a_bad_task_set_and_writes_nothing(run_dir, tmp_path, sets, family,
                                                            extra, message):
    path = write_sets(tmp_path, sets, family)
    out = tmp_path / "evaluation"
    with pytest.raises(SystemExit, match=f"fewshot evaluate: .*{message}"):
        cli.main(["evaluate", str(run_dir), "--task-set", str(path), *extra, *SMALL,
                  "--out", str(out)])
    assert not out.exists()
    assert not list(tmp_path.glob(".evaluation*"))
