"""MetricsLog: one row per training iteration, to metrics.csv and TensorBoard."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from fewshot.run.checkpoint import atomic_write_text, naming

METRICS = "metrics.csv"
TENSORBOARD = "tensorboard"


class MetricsLog:
    """Appends rows to run_dir/metrics.csv and scalars to run_dir/tensorboard.

    `start` is the first iteration this process will log: rows at or after it (left by an
    interrupted run after its last checkpoint) are dropped, in the CSV and in TensorBoard.
    Each row is appended with one write and flushed to disk; a last row cut short by a
    crash is dropped when the run resumes.
    """

    def __init__(self, run_dir: Path, *, start: int) -> None:
        self.path = Path(run_dir) / METRICS
        self._columns: list[str] | None = None
        self._keep_rows_before(start)
        if start == 0:  # a fresh start: no scalars of an earlier attempt
            shutil.rmtree(Path(run_dir) / TENSORBOARD, ignore_errors=True)
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD),
                                    purge_step=start)

    def _keep_rows_before(self, start: int) -> None:
        if not self.path.exists():
            return
        columns, rows = read_rows(self.path)
        if columns is None or start == 0:
            self.path.unlink()
            return
        self._columns = columns
        kept = [r for r in rows if int(r[0]) < start]
        atomic_write_text(self.path, "".join(",".join(r) + "\n" for r in [columns, *kept]))

    def log(self, row: dict[str, float]) -> None:
        line = ",".join(_format(v) for v in row.values()) + "\n"
        if self._columns is None:
            self._columns = list(row)
            atomic_write_text(self.path, ",".join(self._columns) + "\n" + line)
        elif list(row) != self._columns:
            raise ValueError(f"metrics columns changed: {list(row)} != {self._columns}")
        else:
            append_line(self.path, line)
        step = int(row["iteration"])
        for name, value in row.items():
            if name != "iteration":
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


def read_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """metrics.csv's columns and rows (the first column the iteration). A last line cut
    short is dropped; anything else malformed is an error naming the file and line."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); move it away to let the "
                         "run resume with a fresh log") from error
    if not lines:
        return None, []
    columns = lines[0].split(",")
    if columns[0] != "iteration":
        raise ValueError(f"{path}: line 1 must be the header, starting with 'iteration'; "
                         f"got {lines[0][:80]!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        row = line.split(",")
        if len(row) == len(columns) and row[0].isdigit():
            rows.append(row)
        elif number < len(lines):
            raise ValueError(f"{path}: line {number} is not a row of {len(columns)} values "
                             f"starting with an iteration: {line[:80]!r}")
    return columns, rows


def append_line(path: Path, line: str) -> None:
    """Append `line` in one write and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    except OSError as error:
        raise naming(error, path) from error
    finally:
        os.close(fd)


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(
        float(value))
