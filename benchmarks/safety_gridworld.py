"""Safety under poor generalization: catastrophes and solved levels on unseen gridworld
levels against the number of training levels N, for DQN, its 9-member ensemble, the
blocker, both, and the shortest-path oracle.

Each family's trainings are a sweep (benchmarks/safety_<family>.yaml: N x 3 seeds, DQN
with 9 bootstrapped members and a blocker, each trial scored zero-shot as its four
learners on 1,000 test-id and 1,000 test-ood levels) in benchmarks/sweeps/safety-<family>;
an interrupted sweep resumes where it stopped. Then the evaluated trials are compared
(whatever is done so far, with --summarize), the oracle is scored on the same frozen
levels, and the rates with 95% CIs (over levels, seeds as strata) go to
benchmarks/results/safety_gridworld.json, the figure to safety_gridworld.png. How well
the agents fit their own training levels is scored too (plain DQN and the ensemble mean,
greedy, on TRAIN_FIT_TASKS draws from the N training levels), once all of an N's seeds
are trained; it needs the trials' checkpoints, so it is kept in
benchmarks/results/safety_gridworld/<family>/train-fit/.

    .venv/bin/python benchmarks/safety_gridworld.py [--families lava-world] [--summarize]
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sweep_experiment import arguments, rates_by_levels, train_missing

from fewshot.eval.evaluation import RECORDS, compare, evaluate_run
from fewshot.provenance import provenance
from fewshot.sweep.driver import SPEC_COPY
from fewshot.sweep.spec import load_spec

FAMILIES = ("lava-world", "lava-crossing")
LEARNERS = ("trained", "ensemble", "blocked", "blocked-ensemble")
SHOWN = {"trained": "DQN", "ensemble": "ensemble mean (9)", "blocked": "DQN + blocker",
         "blocked-ensemble": "ensemble + blocker", "scripted-oracle": "oracle"}
COLOURS = {"trained": "C0", "blocked": "C1", "blocked-ensemble": "C2", "ensemble": "C3"}
RUN_LEVELS = re.compile(r"train_levels=(\d+)-s\d+$")
TRAIN_FIT_LEARNERS = ("trained", "ensemble")
TRAIN_FIT_TASKS = 200


def spec_path(family: str) -> Path:
    return Path("benchmarks") / f"safety_{family.replace('-', '_')}.yaml"


def sweep_folder(family: str) -> Path:
    return Path("benchmarks/sweeps") / f"safety-{family}"


def evaluated_folders(sweep: Path) -> list[Path]:
    """Every published evaluation of the sweep's trials (a partial sweep has fewer)."""
    return sorted(p.parent for p in (sweep / "runs").glob(f"*/evaluation*/{RECORDS}"))


def training_fit(sweep: Path, family_results: Path) -> dict:
    """{learner: {N: {"train": outcomes}}}: the greedy learners on their own training
    levels, for every N whose seeds are all trained (scored once, then read back)."""
    spec = load_spec(Path(sweep) / SPEC_COPY)
    settings = replace(spec.settings, splits=("train",), tasks=TRAIN_FIT_TASKS)
    by_n: dict[int, list[Path]] = {}
    for run in sorted((sweep / "runs").iterdir()):
        match = RUN_LEVELS.search(run.name)
        if match:
            by_n.setdefault(int(match.group(1)), []).append(run)
    table: dict = {}
    for n, runs in sorted(by_n.items()):
        out = family_results / "train-fit" / f"N{n}"
        if not (out / "summary.json").is_file():
            if len(runs) < len(spec.seeds) or not all(
                    (r / "checkpoint.pt").is_file() and any(r.glob(f"evaluation*/{RECORDS}"))
                    for r in runs):
                continue  # not all trained yet, or checkpoints gone: nothing to score
            with tempfile.TemporaryDirectory() as scratch:
                folders = [evaluate_run(run, settings, learner=learner, progress=False,
                                        label=f"train_levels={n}" + (
                                            "" if learner == "trained" else f" ({learner})"),
                                        out=Path(scratch) / f"{run.name}-{learner}")
                           for run in runs for learner in TRAIN_FIT_LEARNERS]
                compare(folders, out)
        summary = json.loads((out / "summary.json").read_text())
        for learner, by_level in rates_by_levels(summary).items():
            table.setdefault(learner, {}).update(by_level)
    return table


def oracle_rates(run: Path, family_results: Path) -> dict:
    """The scripted oracle on the sweep's frozen levels (the same for every N)."""
    spec = load_spec(spec_path(json.loads((run / "manifest.json").read_text())["family"]))
    out = evaluate_run(run, spec.settings, learner="scripted-oracle",
                       out=family_results / "oracle", progress=False)
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["learners"].values()
    return {split: data["curve"][0]["outcomes"] for split, data in entry["splits"].items()}


PANELS = (("test-id", "catastrophe"), ("test-id", "solved"), ("test-ood", "catastrophe"),
          ("test-ood", "solved"), ("train", "solved"))


def plot(results: dict, path: Path) -> None:
    """Rates against N, one line per learner: on unseen levels, then on the training ones."""
    families = [f for f in FAMILIES if f in results]
    figure, axes = plt.subplots(len(families), len(PANELS),
                                figsize=(4 * len(PANELS), 3.6 * len(families)), squeeze=False)
    for row, family in zip(axes, families, strict=True):
        for ax, (split, outcome) in zip(row, PANELS, strict=True):
            lines = results[family]["train_fit" if split == "train" else "learners"]
            for learner, by_n in sorted(lines.items(), key=lambda item: LEARNERS.index(item[0])):
                ns = sorted(by_n)
                values = [100 * by_n[n][split][outcome]["value"] for n in ns]
                low = [100 * by_n[n][split][outcome]["low"] for n in ns]
                high = [100 * by_n[n][split][outcome]["high"] for n in ns]
                ax.plot(ns, values, marker="o", color=COLOURS[learner], label=SHOWN[learner])
                ax.fill_between(ns, low, high, color=COLOURS[learner], alpha=0.15)
            oracle = results[family].get("oracle")
            if oracle and split in oracle:
                ax.axhline(100 * oracle[split][outcome]["value"], color="black",
                           linestyle="--", label="oracle")
            ax.set_xscale("log")
            levels = sorted({n for by_n in lines.values() for n in by_n})
            ax.set_xticks(levels, [str(n) for n in levels])
            ax.minorticks_off()
            ax.set_ylim(-2, 102)
            ax.set_xlabel("training levels N")
            ax.set_ylabel(f"{outcome} %")
            ax.set_title(f"{family}, {split}")
        row[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    args = arguments(__doc__, FAMILIES, "benchmarks/results/safety_gridworld")
    results_dir = Path(args.results)
    results: dict = {}
    for family in args.families:
        sweep = sweep_folder(family)
        if not args.summarize:
            train_missing(spec_path(family), sweep)
        folders = evaluated_folders(sweep)
        if not folders:
            print(f"{family}: no evaluated trial yet in {sweep}")
            continue
        comparison = compare(folders, results_dir / family / "comparison")
        summary = json.loads((comparison / "summary.json").read_text())
        results[family] = {"learners": rates_by_levels(summary),
                           "oracle": oracle_rates(folders[0].parent, results_dir / family),
                           "train_fit": training_fit(sweep, results_dir / family),
                           "evaluations": len(folders)}
    report = {"results": results, **provenance(load_seconds=1.0)}
    results_dir.mkdir(parents=True, exist_ok=True)
    Path(f"{results_dir}.json").write_text(json.dumps(report, indent=2) + "\n")
    if results:
        plot(results, Path(f"{results_dir}.png"))
    for family, data in results.items():
        for learner, by_n in data["learners"].items():
            for n, entry in sorted(by_n.items()):
                split = entry["test-id"]
                print(f"{family} {SHOWN[learner]:20s} N={n:4d} seeds={len(entry['seeds'])}: "
                      f"catastrophe {100 * split['catastrophe']['value']:5.1f}%  "
                      f"solved {100 * split['solved']['value']:5.1f}% (test-id)")
        for learner, by_n in data["train_fit"].items():
            for n, entry in sorted(by_n.items()):
                print(f"{family} {SHOWN[learner]:20s} N={n:4d}: solved "
                      f"{100 * entry['train']['solved']['value']:5.1f}% of training levels")


if __name__ == "__main__":
    main()
