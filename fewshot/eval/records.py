"""Evaluation records: one row per learner x run x task set x task x k x evaluation episode.

The harness writes them; every table, curve and statistic is derived from them. A record
set is a CSV file, read back into `Records`, a small column table (numpy arrays) with the
selections the statistics need.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

# Columns every record has, in file order; the family's outcomes follow as
# outcome.<name> (0/1), then the task's parameters as task.<name>. "split" holds the
# task set's name (a declared split, or a set of the user's).
FIELDS = ("learner", "run", "run_seed", "split", "task", "k", "episode", "return", "length",
          "terminated", "diverged")
TEXT = ("learner", "run", "split")
INTEGER = ("run_seed", "task", "k", "episode", "length")
FLAG = ("terminated", "diverged")
TASK_PREFIX = "task."
OUTCOME_PREFIX = "outcome."


class Records:
    """Records as columns: `records["return"]` is a float array, one entry per row."""

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        missing = [f for f in FIELDS if f not in columns]
        if missing:
            raise ValueError(f"records lack the columns {missing}; a record has {list(FIELDS)}")
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"record columns differ in length: {sorted(lengths)}")
        self.columns = {name: np.asarray(values) for name, values in columns.items()}

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> Records:
        rows = list(rows)
        if not rows:
            raise ValueError("no records")
        names = list(rows[0])
        return cls({name: np.array([row[name] for row in rows]) for name in names})

    def __len__(self) -> int:
        return len(self.columns["return"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def task_params(self) -> list[str]:
        return [n[len(TASK_PREFIX):] for n in self.columns if n.startswith(TASK_PREFIX)]

    @property
    def outcomes(self) -> list[str]:
        """The outcome names these records carry (the family's declared outcomes)."""
        return [n[len(OUTCOME_PREFIX):] for n in self.columns if n.startswith(OUTCOME_PREFIX)]

    def where(self, **equal: object) -> Records:
        """The rows whose columns equal the given values."""
        keep = np.ones(len(self), dtype=bool)
        for name, value in equal.items():
            keep &= self.columns[name] == value
        return Records({name: values[keep] for name, values in self.columns.items()})

    def where_in(self, name: str, values: Iterable[object]) -> Records:
        """The rows whose column `name` holds one of `values`."""
        keep = np.isin(self.columns[name], list(values))
        return Records({column: data[keep] for column, data in self.columns.items()})

    def unique(self, name: str) -> list:
        """The column's distinct values, in order of first appearance."""
        values = self.columns[name]
        _, first = np.unique(values, return_index=True)
        return [values[i].item() for i in sorted(first)]

    def task_scores(self, value: str = "return") -> dict[str, np.ndarray]:
        """For each run, the mean of `value` over each task's evaluation episodes, as an
        array ordered by task index: the strata the statistics take."""
        scores = {}
        for run in self.unique("run"):
            rows = self.where(run=run)
            _, task_of_row = np.unique(rows["task"], return_inverse=True)
            totals = np.bincount(task_of_row, weights=rows[value].astype(np.float64))
            scores[run] = totals / np.bincount(task_of_row)
        return scores

    def interval_strata(self, value: str = "return") -> tuple[list[np.ndarray], str]:
        """The strata a confidence interval resamples, and their unit: each run's task
        scores ("tasks"), or, when every run holds a single task, that task's evaluation
        episodes in episode order ("episodes"): resampling one task is no interval."""
        runs = [self.where(run=run) for run in self.unique("run")]
        if all(len(rows.unique("task")) == 1 for rows in runs):
            return [rows[value].astype(np.float64)[np.argsort(rows["episode"], kind="stable")]
                    for rows in runs], "episodes"
        return list(self.task_scores(value).values()), "tasks"

    def concat(self, other: Records) -> Records:
        if set(self.columns) != set(other.columns):
            raise ValueError(f"cannot combine records with columns {sorted(self.columns)} and "
                             f"{sorted(other.columns)}")
        return Records({n: np.concatenate([v, other.columns[n]]) for n, v in self.columns.items()})

    # Files --------------------------------------------------------------------------

    def to_csv(self) -> str:
        names = list(self.columns)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for i in range(len(self)):
            writer.writerow([_cell(self.columns[n][i]) for n in names])
        return out.getvalue()

    def to_csv_gz(self) -> bytes:
        """The CSV, gzip-compressed (no timestamp inside: the same records give the same
        bytes, so committed records only change when they do)."""
        return gzip.compress(self.to_csv().encode(), mtime=0)

    @classmethod
    def read_csv(cls, path: Path) -> Records:
        """Records from a CSV file written by `to_csv` (or `to_csv_gz`, for a path ending in
        .gz); a clear error if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no records at {path}")
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"{path} is not a records file: {error}") from error
        if not rows:
            raise ValueError(f"{path} holds no records")
        try:
            columns = {name: _parse([row[name] for row in rows], name)
                       for name in rows[0]}
            return cls(columns)
        except (KeyError, TypeError, ValueError) as error:  # TypeError: a short row
            raise ValueError(f"{path} is not a records file: {error}") from error


def _cell(value: object) -> object:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return value


def _parse(values: list[str], name: str) -> np.ndarray:
    if name in TEXT:
        return np.array(values, dtype=str)
    if name in INTEGER:
        return np.array(values, dtype=np.int64)
    if name in FLAG or name.startswith(OUTCOME_PREFIX):
        return np.array(values, dtype=np.int64).astype(bool)
    return np.array(values, dtype=float)
