"""What the sweep-backed experiments (epistemic_pomdp.py, safety_gridworld.py,
catastrophe_prediction.py) share: their command line, and training what a sweep still
misses (a sweep folder that holds its SPEC's copy is resumed), and reading outcome rates
from a comparison of trials labelled by their number of training levels."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from fewshot.sweep.driver import SPEC_COPY, run_sweep


def arguments(doc: str, families: Sequence[str], results: str, *,
              flag: str = "--families") -> argparse.Namespace:
    """`flag` (a subset of `families`: the families, or the experiments, to run),
    --summarize, --results (a path without its suffix: the JSON and the figures are named
    after it)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(flag, nargs="+", default=list(families), choices=families)
    parser.add_argument("--summarize", action="store_true",
                        help="train nothing: report what the sweeps hold so far")
    parser.add_argument("--results", default=results)
    return parser.parse_args()


def train_missing(spec: Path, sweep: Path) -> None:
    """Run the sweep, resuming it when the folder has begun."""
    run_sweep(spec, sweep, resume=(sweep / SPEC_COPY).is_file())


LEVELS_LABEL = re.compile(r"train_levels=(\d+)(?: \((.+)\))?$")


def rates_by_levels(summary: dict) -> dict[str, dict[int, dict]]:
    """{learner: {N: {"seeds": runs, split: {outcome: {value, low, high}}}}} at k = 0,
    from a comparison summary whose labels end in "train_levels=N" or "train_levels=N
    (learner)" (the learner `trained` when none is named); other labels are skipped."""
    table: dict = {}
    for label, entry in summary["learners"].items():
        match = LEVELS_LABEL.search(label)
        if match is None:
            continue
        per_split = {split: data["curve"][0]["outcomes"]
                     for split, data in entry["splits"].items()}
        table.setdefault(match.group(2) or "trained", {})[int(match.group(1))] = {
            "seeds": entry["runs"], **per_split}
    return table
