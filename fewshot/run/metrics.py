"""MetricsLog: one row per training iteration, to metrics.csv and TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from fewshot.run.checkpoint import atomic_write_text

METRICS = "metrics.csv"


class MetricsLog:
    """Appends rows to run_dir/metrics.csv and scalars to run_dir/tensorboard.

    `start` is the first iteration this process will log: rows at or after it (left by an
    interrupted run after its last checkpoint) are dropped, in the CSV and in TensorBoard.
    """

    def __init__(self, run_dir: Path, *, start: int) -> None:
        self.path = Path(run_dir) / METRICS
        self._columns: list[str] | None = None
        self._keep_rows_before(start)
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                    purge_step=start)

    def _keep_rows_before(self, start: int) -> None:
        if not self.path.exists():
            return
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self._columns = list(rows[0])
        kept = [r for r in rows if int(r["iteration"]) < start]
        lines = [",".join(self._columns)] + [",".join(r[c] for c in self._columns)
                                             for r in kept]
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def log(self, row: dict[str, float]) -> None:
        if self._columns is None:
            self._columns = list(row)
            self.path.write_text(",".join(self._columns) + "\n")
        if list(row) != self._columns:
            raise ValueError(f"metrics columns changed: {list(row)} != {self._columns}")
        with self.path.open("a") as f:
            f.write(",".join(_format(row[c]) for c in self._columns) + "\n")
        step = int(row["iteration"])
        for name, value in row.items():
            if name != "iteration":
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(
        float(value))
