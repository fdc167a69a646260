"""Does estimating TRPO's curvature on every 5th episode change what MAML learns?

Trains (or resumes) the sweep of benchmarks/fisher_subsample.yaml: MAML-TRPO on point-nav
(or, with --family cheetah-dir, of fisher_subsample_cheetah_dir.yaml),
fisher_subsample 1 (exact) and 5, 3 seeds each, scored by the harness on 40 test-id tasks
before and after one step. Reports, per setting: R(0) and R(20) with 95% intervals (from
the sweep's comparison, records included), the post-step training return of the last 10
iterations per seed, and the median update and sampling seconds per iteration (the runs
of both settings share the machine alike, two at a time). Writes
benchmarks/results/fisher_subsample.json and .png (fisher_subsample_cheetah_dir.*).

    .venv/bin/python benchmarks/fisher_subsample.py [--family cheetah-dir] [--summarize]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sweep_experiment import train_missing

from fewshot.provenance import provenance

# family -> (SPEC, sweep folder, results without suffix)
EXPERIMENTS = {
    "point-nav": (Path("benchmarks/fisher_subsample.yaml"),
                  Path("benchmarks/sweeps/fisher-subsample"),
                  Path("benchmarks/results/fisher_subsample")),
    "cheetah-dir": (Path("benchmarks/fisher_subsample_cheetah_dir.yaml"),
                    Path("benchmarks/sweeps/fisher-subsample-cheetah-dir"),
                    Path("benchmarks/results/fisher_subsample_cheetah_dir")),
}
LABEL = re.compile(r"fisher_subsample=(\d+)")
LAST = 10  # iterations averaged for the end of training


def metrics(run: Path) -> dict[str, np.ndarray]:
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def training_table(sweep: Path) -> dict[str, dict]:
    """Per setting: each seed's curve, its last iterations' post-step return, and the
    median seconds per iteration spent updating and sampling."""
    table: dict[str, dict] = {}
    for run in sorted((sweep / "runs").glob("*")):
        match = LABEL.search(run.name)
        if match is None or not (run / "metrics.csv").is_file():
            continue
        m = metrics(run)
        entry = table.setdefault(match.group(1), {"runs": [], "curves": [], "end": [],
                                                  "update_seconds": [], "sample_seconds": []})
        entry["runs"].append(run.name)
        entry["curves"].append(m["return_step1"].tolist())
        entry["end"].append(float(m["return_step1"][-LAST:].mean()))
        entry["update_seconds"] += m["update_seconds"].tolist()
        entry["sample_seconds"] += m["sample_seconds"].tolist()
    for entry in table.values():
        entry["end_mean"] = float(np.mean(entry["end"]))
        entry["median_update_seconds"] = statistics.median(entry.pop("update_seconds"))
        entry["median_sample_seconds"] = statistics.median(entry.pop("sample_seconds"))
    return table


def evaluation_table(sweep: Path) -> dict[str, dict]:
    """Per setting: R(0) and R(20) on test-id with their intervals and per-seed means."""
    summary_path = sweep / "comparison" / "summary.json"
    if not summary_path.is_file():
        return {}
    table = {}
    for label, entry in json.loads(summary_path.read_text())["learners"].items():
        match = LABEL.search(label)
        if match is None:
            continue
        curve = entry["splits"]["test-id"]["curve"]
        table[match.group(1)] = {f"R({p['k']})": {**p["mean"], "per_run": p["per_run_mean"]}
                                 for p in curve}
    return table


def plot(training: dict, family: str, path: Path) -> None:
    figure, ax = plt.subplots(figsize=(7, 4))
    for i, (setting, entry) in enumerate(sorted(training.items())):
        curves = [np.asarray(c) for c in entry["curves"]]
        for curve in curves:
            ax.plot(curve, color=f"C{i}", alpha=0.3, linewidth=0.8)
        length = min(len(c) for c in curves)
        ax.plot(np.mean([c[:length] for c in curves], axis=0), color=f"C{i}",
                label=f"fisher_subsample {setting} ({len(curves)} seeds)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("return after the inner step (training tasks)")
    ax.set_title(f"MAML-TRPO on {family}: curvature on all episodes vs every 5th")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=list(EXPERIMENTS), default="point-nav",
                        help="which sweep (default: %(default)s)")
    parser.add_argument("--summarize", action="store_true",
                        help="train nothing: report what the sweep holds so far")
    args = parser.parse_args()
    spec, sweep, results = EXPERIMENTS[args.family]
    if not args.summarize:
        train_missing(spec, sweep)
    training = training_table(sweep)
    result = {"training": training, "evaluation": evaluation_table(sweep),
              **provenance(load_seconds=1.0)}
    if {"1", "5"} <= set(training):
        exact, cheap = training["1"], training["5"]
        result["update_speedup"] = exact["median_update_seconds"] / cheap["median_update_seconds"]
    results.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{results}.json").write_text(json.dumps(result, indent=2) + "\n")
    if training:
        plot(training, args.family, Path(f"{results}.png"))
    for setting, entry in sorted(training.items()):
        shown = result["evaluation"].get(setting, {})
        scores = ", ".join(f"{k} {v['value']:.1f} [{v['low']:.1f}, {v['high']:.1f}]"
                           for k, v in shown.items())
        print(f"fisher_subsample {setting}: last {LAST} iterations "
              f"{entry['end_mean']:.1f} (seeds {[round(e, 1) for e in entry['end']]}); update "
              f"{entry['median_update_seconds']:.2f} s, sampling "
              f"{entry['median_sample_seconds']:.2f} s per iteration; {scores}")
    if "update_speedup" in result:
        print(f"update speedup of the subsample: {result['update_speedup']:.2f}x")


if __name__ == "__main__":
    main()
