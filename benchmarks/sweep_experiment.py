"""What the sweep-backed experiments (epistemic_pomdp.py, safety_gridworld.py,
catastrophe_prediction.py) share: their command line, and training what a sweep still
misses (a sweep folder that holds its SPEC's copy is resumed)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fewshot.sweep.driver import SPEC_COPY, run_sweep


def arguments(doc: str, families: Sequence[str], results: str) -> argparse.Namespace:
    """--families (a subset of `families`), --summarize, --results (a path without its
    suffix: the JSON and the figures are named after it)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(families), choices=families)
    parser.add_argument("--summarize", action="store_true",
                        help="train nothing: report what the sweeps hold so far")
    parser.add_argument("--results", default=results)
    return parser.parse_args()


def train_missing(spec: Path, sweep: Path) -> None:
    """Run the sweep, resuming it when the folder has begun."""
    run_sweep(spec, sweep, resume=(sweep / SPEC_COPY).is_file())
