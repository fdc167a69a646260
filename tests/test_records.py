"""Records: the column table every statistic is derived from, and its CSV files."""

import numpy as np
import pytest

from fewshot.eval.records import FIELDS, Records


def row(**changes):
    base = {"learner": "maml", "run": "maml-point-nav-s0", "run_seed": 0, "split": "test-id",
            "task": 0, "k": 0, "episode": 0, "return": -1.5, "length": 100,
            "terminated": False, "diverged": False, "task.goal_x": 0.25, "task.goal_y": -0.5}
    return {**base, **changes}


def table():
    return Records.from_rows([
        row(task=0, episode=0, **{"return": -1.0}), row(task=0, episode=1, **{"return": -3.0}),
        row(task=1, episode=0, **{"return": -10.0}), row(task=1, episode=1, **{"return": -20.0}),
        row(run="maml-point-nav-s1", run_seed=1, task=0, **{"return": -5.0}),
        row(run="maml-point-nav-s1", run_seed=1, task=1, **{"return": -7.0}),
        row(split="test-ood", k=1, terminated=True, diverged=True, **{"return": -0.1}),
    ])


def test_csv_round_trip_keeps_values_and_types(tmp_path):
    records = table()
    path = tmp_path / "records.csv"
    path.write_text(records.to_csv())
    back = Records.read_csv(path)
    assert list(back.columns) == list(records.columns)
    for name in records.columns:
        np.testing.assert_array_equal(back[name], records[name])
    assert back["diverged"].dtype == bool and back["k"].dtype == np.int64
    assert back.task_params == ["goal_x", "goal_y"]


def test_where_unique_and_task_scores():
    records = table().where(split="test-id")
    assert len(records) == 6
    assert records.unique("run") == ["maml-point-nav-s0", "maml-point-nav-s1"]
    scores = records.task_scores()
    np.testing.assert_allclose(scores["maml-point-nav-s0"], [-2.0, -15.0])
    np.testing.assert_allclose(scores["maml-point-nav-s1"], [-5.0, -7.0])


def test_records_must_have_every_field():
    rows = [{k: v for k, v in row().items() if k != "diverged"}]
    with pytest.raises(ValueError, match="diverged"):
        Records.from_rows(rows)
    assert "diverged" in FIELDS


def test_reading_a_missing_or_foreign_file_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no records"):
        Records.read_csv(tmp_path / "nope.csv")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a records file"):
        Records.read_csv(foreign)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(FIELDS) + "\n")
    with pytest.raises(ValueError, match="no records"):
        Records.read_csv(empty)


def test_concat_refuses_different_columns():
    other = Records.from_rows([{k: v for k, v in row().items() if k != "task.goal_y"}])
    with pytest.raises(ValueError, match="cannot combine"):
        table().concat(other)


def test_interval_strata_resample_tasks_or_the_single_tasks_episodes():
    records = table().where(split="test-id")
    strata, unit = records.interval_strata()
    assert unit == "tasks"
    np.testing.assert_allclose(strata[0], [-2.0, -15.0])
    one_task = records.where(task=0)
    strata, unit = one_task.interval_strata()
    assert unit == "episodes"
    np.testing.assert_allclose(strata[0], [-1.0, -3.0])   # s0's two episodes, in order
    np.testing.assert_allclose(strata[1], [-5.0])


def test_a_single_tasks_curve_and_gain_have_intervals_over_its_trials():
    """One held-out task (a gait, say): the interval comes from its trials, not a point."""
    from fewshot.eval import report

    gen = np.random.default_rng(0)
    rows = [row(run=f"r{seed}", run_seed=seed, task=0, k=k, episode=trial,
                **{"return": 10.0 * k + trial + gen.normal()})
            for seed in range(3) for k in (0, 5) for trial in range(4)]
    records = Records.from_rows(rows)
    point = report.curve(records, "test-id")[1]
    assert point["resampled"] == "episodes" and point["tasks"] == 1
    assert point["mean"]["low"] < point["mean"]["value"] < point["mean"]["high"]
    gain = report.adaptation_gain(records, "test-id")
    assert gain["resampled"] == "episodes"
    assert gain["low"] < 50.0 < gain["high"] and gain["high"] - gain["low"] < 10.0
