"""The epistemic POMDP in practice: do adaptive (memory) or randomized policies generalize
from finitely many training levels better than a Markov, deterministic one?

Four learners on two families, each trained on few and on many training levels, 3 seeds:
multi-task PPO scored greedy (its most likely choice: the deterministic Markov policy an
MDP's optimum is) and sampled (the same network, randomized), RL² (memory within the
episode) and LEEP (a bootstrapped ensemble of 4 PPO policies acting with pi_max).

- maze: procedurally generated mazes, 50 and 200 training levels; solved %, looping %
  and return on unseen levels (test-id) and larger ones (test-ood);
- guessing-game on the digits images: 50 and 1000 training images; success %, guesses
  (episode length: guesses until right, the horizon when never right) and return on
  held-out images (test-id) and noisy ones (test-ood).

Each family's trainings are a sweep (benchmarks/epistemic_<family>.yaml) in
benchmarks/sweeps/epistemic-<family>; an interrupted sweep resumes where it stopped, and
--summarize compares whatever is evaluated so far. For each number of training levels,
the evaluated trials are compared on the same frozen tasks: rates and means with 95% CIs
(over tasks, seeds as strata) and the paired P(A > B) of returns on the same tasks. Results go
to benchmarks/results/epistemic_pomdp.json, the figure to epistemic_pomdp.png, the
comparisons (records included) to benchmarks/results/epistemic_pomdp/.

    .venv/bin/python benchmarks/epistemic_pomdp.py [--families maze] [--summarize]
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sweep_experiment import arguments, train_missing

from fewshot.eval import stats
from fewshot.eval.evaluation import RECORDS, compare
from fewshot.eval.records import Records
from fewshot.provenance import provenance

FAMILIES = ("maze", "guessing-game")
OUTCOME = {"maze": "solved", "guessing-game": "success"}
SECOND = {"maze": ("looping", "looping %"), "guessing-game": ("length", "guesses")}
SHOWN = {("ppo", "greedy"): "PPO (greedy)", ("ppo", "trained"): "PPO (sampled)",
         ("rl2", "trained"): "RL²", ("leep", "trained"): "LEEP"}
ORDER = list(SHOWN.values())
# (challenger, baseline): the paired P(challenger > baseline) reported
PAIRS = (("LEEP", "PPO (greedy)"), ("RL²", "PPO (greedy)"), ("PPO (sampled)", "PPO (greedy)"),
         ("LEEP", "PPO (sampled)"), ("RL²", "PPO (sampled)"))
LABEL = re.compile(r"^(?P<algo>\w+)-\S+ (?P<knob>\w+)=(?P<n>\d+)(?: \((?P<learner>.+)\))?$")
SPLITS = ("train", "test-id", "test-ood")


def spec_path(family: str) -> Path:
    return Path("benchmarks") / f"epistemic_{family.split('-')[0]}.yaml"


def sweep_folder(family: str) -> Path:
    return Path("benchmarks/sweeps") / f"epistemic-{family.split('-')[0]}"


def parse(label: str) -> tuple[str, int]:
    """('LEEP', 50) from 'leep-maze train_levels=50'."""
    match = LABEL.match(label)
    if match is None:
        raise ValueError(f"not a label of this benchmark's sweeps: {label!r}")
    return SHOWN[(match["algo"], match["learner"] or "trained")], int(match["n"])


def evaluations_by_n(sweep: Path) -> dict[int, list[Path]]:
    """The sweep's published evaluations, grouped by the number of training levels."""
    groups: dict[int, list[Path]] = {}
    for records in sorted((sweep / "runs").glob(f"*/evaluation*/{RECORDS}")):
        n = int(re.search(r"=(\d+)-s\d+$", records.parent.parent.name).group(1))
        groups.setdefault(n, []).append(records.parent)
    return groups


def mean_length(records: Records, label: str, split: str) -> dict[str, float]:
    """Mean episode length (k = 0) with its 95% CI, seeds as strata."""
    rows = records.where(learner=label, split=split, k=0)
    return stats.estimate(list(rows.task_scores("length").values())).as_dict()


def table_of(comparison: Path) -> dict:
    """{learner: {split: {return, <outcomes>, length}}} and the paired P(A > B) of each
    of PAIRS, from one comparison folder."""
    summary = json.loads((comparison / "summary.json").read_text())
    records = Records.read_csv(comparison / RECORDS)
    learners: dict = {}
    for label, entry in summary["learners"].items():
        shown, _ = parse(label)
        row: dict = {"seeds": len(entry["runs"])}
        for split, data in entry["splits"].items():
            point = data["curve"][0]
            row[split] = {"return": point["mean"], **point["outcomes"],
                          "length": mean_length(records, label, split)}
        learners[shown] = row
    improvement: dict = {}
    for pair in summary["probability_of_improvement"]:
        a, b = parse(pair["a"])[0], parse(pair["b"])[0]
        value = {k: pair[k] for k in ("value", "low", "high")}
        if (a, b) in PAIRS:
            pass
        elif (b, a) in PAIRS:  # P(B > A) = 1 - P(A > B)
            a, b = b, a
            value = {"value": 1 - value["value"], "low": 1 - value["high"],
                     "high": 1 - value["low"]}
        else:
            continue
        improvement.setdefault(f"P({a} > {b})", {})[pair["split"]] = value
    return {"learners": learners, "improvement": improvement}


def plot(results: dict, path: Path) -> None:
    """Per family, bars by learner at each N: the outcome and the second measure, on
    test-id and test-ood, with 95% CIs."""
    families = [f for f in FAMILIES if f in results]
    panels = [(split, measure) for measure in ("outcome", "second")
              for split in ("test-id", "test-ood")]
    figure, axes = plt.subplots(len(families), len(panels),
                                figsize=(4.2 * len(panels), 3.6 * len(families)),
                                squeeze=False)
    for row, family in zip(axes, families, strict=True):
        by_n = results[family]
        ns = sorted(by_n, key=int)
        for ax, (split, measure) in zip(row, panels, strict=True):
            name, unit = ((OUTCOME[family], f"{OUTCOME[family]} %") if measure == "outcome"
                          else SECOND[family])
            scale = 1 if name == "length" else 100
            width = 0.8 / len(ORDER)
            for i, learner in enumerate(ORDER):
                xs, values, errors = [], [], [[], []]
                for j, n in enumerate(ns):
                    entry = by_n[n]["learners"].get(learner, {}).get(split)
                    if entry is None:
                        continue
                    e = entry[name]
                    xs.append(j + (i - (len(ORDER) - 1) / 2) * width)
                    values.append(scale * e["value"])
                    errors[0].append(scale * (e["value"] - e["low"]))
                    errors[1].append(scale * (e["high"] - e["value"]))
                ax.bar(xs, values, width, yerr=errors, label=learner, color=f"C{i}",
                       capsize=2)
            ax.set_xticks(range(len(ns)), [str(n) for n in ns])
            ax.set_xlabel("training levels" if family == "maze" else "training images")
            ax.set_ylabel(unit)
            ax.set_title(f"{family}, {split}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(ORDER))
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    figure.savefig(path, dpi=110)


def report_lines(results: dict) -> list[str]:
    lines = []
    for family, by_n in results.items():
        outcome, (second, _) = OUTCOME[family], SECOND[family]
        for n, data in sorted(by_n.items(), key=lambda item: int(item[0])):
            for learner in ORDER:
                entry = data["learners"].get(learner)
                if entry is None:
                    continue
                cells = []
                for split in SPLITS:
                    if split in entry:
                        e = entry[split]
                        extra = (f"{100 * e[second]['value']:5.1f}%" if second != "length"
                                 else f"{e[second]['value']:5.2f}")
                        cells.append(f"{split} {100 * e[outcome]['value']:5.1f}% "
                                     f"{second} {extra} R {e['return']['value']:6.3f}")
                lines.append(f"{family} N={n} {learner:14s} seeds={entry['seeds']}: "
                             + " | ".join(cells))
            for name, by_split in data["improvement"].items():
                lines.append(f"{family} N={n} {name}: " + ", ".join(
                    f"{split} {v['value']:.2f} [{v['low']:.2f}, {v['high']:.2f}]"
                    for split, v in by_split.items()))
    return lines


def main() -> None:
    args = arguments(__doc__, FAMILIES, "benchmarks/results/epistemic_pomdp")
    results_dir = Path(args.results)
    results: dict = {}
    for family in args.families:
        sweep = sweep_folder(family)
        if not args.summarize:
            train_missing(spec_path(family), sweep)
        for n, folders in sorted(evaluations_by_n(sweep).items()):
            if len(folders) < 2:
                continue
            out = results_dir / family / f"N{n}"
            results.setdefault(family, {})[str(n)] = table_of(compare(folders, out))
    report = {"results": results, **provenance(load_seconds=1.0)}
    results_dir.mkdir(parents=True, exist_ok=True)
    Path(f"{results_dir}.json").write_text(json.dumps(report, indent=2) + "\n")
    if results:
        plot(results, Path(f"{results_dir}.png"))
    print("\n".join(report_lines(results)))


if __name__ == "__main__":
    main()
