"""Per-task normalised returns, so tasks whose rewards differ in scale (gaits, say) can be
pooled and compared: (R - R_low) / (R_high - R_low), where R_low and R_high are two
reference learners' mean returns on the same task, e.g. the random policy (0) and a
specialist trained on that task alone (1).

A task is one (split, task index) of a frozen task set; the references must have been
evaluated on the same frozen tasks as the learners they normalise (same --eval-seed and
--tasks), which is checked on the tasks' parameters.
"""

from __future__ import annotations

import numpy as np

from fewshot.eval.records import TASK_PREFIX, Records


def reference_means(records: Records, learner: str) -> dict[tuple[str, int], float]:
    """A reference learner's mean return per (split, task), over all its rows."""
    rows = records.where(learner=learner)
    if not len(rows):
        raise ValueError(f"normalisation: no records of the reference learner {learner!r}; "
                         f"the records hold {records.unique('learner')}")
    means = {}
    for split in rows.unique("split"):
        in_split = rows.where(split=split)
        for task in in_split.unique("task"):
            means[split, int(task)] = float(in_split.where(task=task)["return"].mean())
    return means


def normalized(records: Records, *, low: str, high: str, min_gap: float = 1e-8) -> Records:
    """The records of every learner but `low` and `high`, with "return" replaced by
    (R - mean R_low) / (mean R_high - mean R_low) of its (split, task). Each task needs
    both references, with the same task parameters, and R_high above R_low by more than
    `min_gap`; else a ValueError naming the task."""
    if low == high:
        raise ValueError(f"normalisation: low and high must be two learners, got {low!r} "
                         f"twice")
    floor, ceiling = reference_means(records, low), reference_means(records, high)
    others = records.where_in("learner", [name for name in records.unique("learner")
                                          if name not in (low, high)])
    if not len(others):
        raise ValueError(f"normalisation: the records hold only the references {low!r} "
                         f"and {high!r}")
    check_same_tasks(records, others, (low, high))
    out = np.array(others["return"], dtype=np.float64)
    for i, (split, task) in enumerate(zip(others["split"], others["task"], strict=True)):
        key = (str(split), int(task))
        for name, means in ((low, floor), (high, ceiling)):
            if key not in means:
                raise ValueError(f"normalisation: {name!r} was not evaluated on task {key[1]} "
                                 f"of {key[0]!r}; evaluate the references on the same "
                                 f"frozen tasks")
        gap = ceiling[key] - floor[key]
        if not gap > min_gap:
            raise ValueError(f"normalisation: on task {key[1]} of {key[0]!r}, {high!r} "
                             f"({ceiling[key]:g}) is not above {low!r} ({floor[key]:g})")
        out[i] = (out[i] - floor[key]) / gap
    return Records({**others.columns, "return": out})


def check_same_tasks(records: Records, others: Records, references: tuple[str, str]) -> None:
    """The references' tasks have the parameters the learners' tasks of the same (split,
    task index) have."""
    params = [TASK_PREFIX + p for p in records.task_params]
    seen: dict[tuple[str, int], tuple] = {}
    for rows in (others, records.where_in("learner", references)):
        for i in range(len(rows)):
            key = (str(rows["split"][i]), int(rows["task"][i]))
            values = tuple(rows[p][i].item() for p in params)
            if seen.setdefault(key, values) != values:
                raise ValueError(f"normalisation: task {key[1]} of {key[0]!r} differs "
                                 f"between learners ({seen[key]} against {values}); "
                                 f"evaluate them on the same frozen tasks")
