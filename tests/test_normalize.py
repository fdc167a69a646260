"""Per-task normalised returns (fewshot/eval/normalize.py) by hand, and the records it
refuses, named."""

from __future__ import annotations

import numpy as np
import pytest

from fewshot.eval.normalize import normalized
from fewshot.eval.records import Records


def row(learner: str, split: str, task: int, ret: float, *, gait: float = 0.0,
        episode: int = 0) -> dict:
    return {"learner": learner, "run": learner, "run_seed": 0, "split": split, "task": task,
            "k": 0, "episode": episode, "return": ret, "length": 10, "terminated": False,
            "diverged": False, "task.gait": gait if task == 0 else 1.0}


def example() -> list[dict]:
    """Two tasks with rewards ten times apart: random scores 0 and 10, a specialist 10
    and 110 (two episodes each), and a learner 5 and 60."""
    return [row("random", "test-id", 0, 0.0), row("random", "test-id", 1, 10.0),
            row("specialist", "test-id", 0, 8.0), row("specialist", "test-id", 0, 12.0,
                                                      episode=1),
            row("specialist", "test-id", 1, 110.0),
            row("maml", "test-id", 0, 5.0), row("maml", "test-id", 1, 60.0),
            row("maml", "test-id", 1, 110.0, episode=1)]


def test_returns_become_the_share_of_the_way_from_low_to_high_on_their_task():
    out = normalized(Records.from_rows(example()), low="random", high="specialist")
    assert out.unique("learner") == ["maml"]
    # task 0: (5 - 0) / (10 - 0); task 1: (60 - 10) / (110 - 10), (110 - 10) / 100
    np.testing.assert_allclose(out["return"], [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(out["task"], [0, 1, 1])


@pytest.mark.parametrize(("change", "message"), [
    (lambda rows: [r for r in rows if r["learner"] != "random"],
     "no records of the reference learner 'random'"),
    (lambda rows: [r for r in rows if not (r["learner"] == "specialist" and r["task"] == 1)],
     "'specialist' was not evaluated on task 1 of 'test-id'"),
    (lambda rows: [{**r, "return": 0.0} if r["learner"] == "specialist" else r for r in rows],
     r"on task 0 of 'test-id', 'specialist' \(0\) is not above 'random' \(0\)"),
    (lambda rows: [{**r, "task.gait": 0.5} if r["learner"] == "random" and r["task"] == 0
                   else r for r in rows], "task 0 of 'test-id' differs between learners"),
    (lambda rows: [r for r in rows if r["learner"] != "maml"], "hold only the references"),
])
def test_records_that_cannot_be_normalised_are_refused_naming_why(change, message):
    with pytest.raises(ValueError, match=message):
        normalized(Records.from_rows(change(example())), low="random", high="specialist")


def test_the_two_references_must_differ():
    with pytest.raises(ValueError, match="two learners"):
        normalized(Records.from_rows(example()), low="random", high="random")
