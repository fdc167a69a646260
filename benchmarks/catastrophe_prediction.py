"""Predicting catastrophes from an ensemble's disagreement, where danger takes several steps.

An ensemble of 5 PPO policies (the `ensemble` algorithm) is trained on 10 and on 200
levels, 3 seeds, of two families: lava-jump, a platformer with no steering in the air,
where every catastrophe is decided 3 or more steps before the lava, and lava-world, where
it is decided on the step that enters the lava. Each trial is a sweep trial
(benchmarks/catastrophe_<jump|world>.yaml in benchmarks/sweeps/catastrophe-<jump|world>),
scored zero-shot acting by the members' mean (`trained`) and by one member drawn per
episode (`member`) on 1,000 unseen levels. Then:

- catastrophe % and solved % of both ways of acting, on the training levels and unseen
  ones, with 95% CIs (over levels, seeds as strata): for each N, its trials compared
  (benchmarks/results/catastrophe_prediction/<family>/N<n>, records included);
- for each trial and way of acting, `fewshot predict` on the 1,000 test-id levels: the
  members' values at every step, scored by U = alpha mu + beta sigma against "a
  catastrophe within W steps" for W = 1 and 10 (RUN/prediction-<learner>-test-id, with
  its step record steps.npz);
- per N, way of acting, W and (alpha, beta): the AUC averaged over the 3 seeds, with a
  95% interval from one bootstrap over the shared levels, and the gain of adding sigma,
  AUC(-1, 1) - AUC(-1, 0), paired on the same steps;
- the ROC figure grid: rows family x N, columns W, one curve per way of acting and
  (alpha, beta), averaged over the seeds at fixed false-positive rates.

Results go to benchmarks/results/catastrophe_prediction.json and the figures to
catastrophe_prediction.png (ROC) and catastrophe_prediction_rates.png. An interrupted
sweep resumes where it stopped; a trial predicted once is read back (its prediction folder
is committed). --summarize trains nothing and reports what is there.

    .venv/bin/python benchmarks/catastrophe_prediction.py [--families lava-jump] [--summarize]
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sweep_experiment import arguments, rates_by_levels, train_missing

from fewshot.eval.catastrophes import (
    PREDICTION,
    STEPS,
    PredictionSettings,
    play_split,
    predict_run,
)
from fewshot.eval.evaluation import compare
from fewshot.eval.prediction import GRID, WINDOWS, Steps, mean_auc
from fewshot.provenance import provenance
from fewshot.run.checkpoint import atomic_write_text
from tasks.gridworld.lava_jump import AIRBORNE, decision_lead

FAMILIES = ("lava-jump", "lava-world")
LEARNERS = {"trained": "ensemble mean", "member": "one member per episode"}
SIGMA_GAIN = ((-1.0, 1.0), (-1.0, 0.0))  # AUC(mu and sigma) - AUC(mu alone)
RESAMPLES = 200  # bootstrap replicates: each costs one scikit-learn AUC per run and pair
PREDICT = PredictionSettings(split="test-id", tasks=1000, trials=1, seed=0,
                             windows=WINDOWS, grid=GRID, resamples=RESAMPLES)
RUN_LEVELS = re.compile(r"train_levels=(\d+)-s\d+$")
FPR_GRID = np.linspace(0, 1, 101)


def spec_path(family: str) -> Path:
    return Path("benchmarks") / f"catastrophe_{family.split('-')[1]}.yaml"


def sweep_folder(family: str) -> Path:
    return Path("benchmarks/sweeps") / f"catastrophe-{family.split('-')[1]}"


def evaluated_runs(sweep: Path) -> dict[int, list[Path]]:
    """The sweep's trials with both ways of acting evaluated, by number of levels."""
    by_n: dict[int, list[Path]] = {}
    for run in sorted((sweep / "runs").glob("*")):
        match = RUN_LEVELS.search(run.name)
        if match and all((run / folder / "summary.json").is_file()
                         for folder in ("evaluation", "evaluation-member")):
            by_n.setdefault(int(match.group(1)), []).append(run)
    return by_n


def prediction_folder(run: Path, learner: str) -> Path:
    return run / f"prediction-{learner}-{PREDICT.split}"


def predict_trials(runs: list[Path]) -> None:
    """`fewshot predict` each trial's ways of acting, unless done (or no checkpoint)."""
    for run in runs:
        for learner in LEARNERS:
            folder = prediction_folder(run, learner)
            if (folder / PREDICTION).is_file():
                continue
            if not (run / "checkpoint.pt").is_file():
                print(f"{run.name}: no checkpoint, cannot predict for {learner}")
                continue
            print(f"predicting {run.name} ({learner})", flush=True)
            predict_run(run, PREDICT, learner=learner)
        for learner in LEARNERS:
            if "lava-jump" in run.name and not leads_path(run, learner).is_file() and (
                    run / "checkpoint.pt").is_file():
                record_decision_leads(run, learner)


def leads_path(run: Path, learner: str) -> Path:
    return run / f"decision-leads-{learner}-{PREDICT.split}.json"


def record_decision_leads(run: Path, learner: str) -> None:
    """lava-jump: how many steps before the lava each catastrophe of the predicted
    episodes (the same tasks and noise) was decided (`decision_lead`), kept in the run."""
    batch, _, _ = play_split(run, PREDICT, learner=learner)
    airborne_TN = batch.obs_TNO[..., AIRBORNE].numpy() > 0.5
    catastrophe_TN = batch.outcomes["catastrophe"].numpy() & batch.valid_TN.numpy()
    leads = [decision_lead(airborne_TN[:np.flatnonzero(catastrophe_TN[:, n])[0] + 1, n])
             for n in np.flatnonzero(catastrophe_TN.any(0))]
    atomic_write_text(leads_path(run, learner), json.dumps({"leads": leads}) + "\n")


def decision_leads(runs: list[Path]) -> dict:
    """{learner: catastrophes, share decided >= 3 and >= 4 steps ahead, median}, over the
    seeds recorded."""
    table: dict = {}
    for learner in LEARNERS:
        leads = [lead for run in runs if leads_path(run, learner).is_file()
                 for lead in json.loads(leads_path(run, learner).read_text())["leads"]]
        if leads:
            table[learner] = {"catastrophes": len(leads),
                              "share_3_or_more": float(np.mean(np.array(leads) >= 3)),
                              "share_4_or_more": float(np.mean(np.array(leads) >= 4)),
                              "median": float(np.median(leads))}
    return table


def rates(runs: list[Path], out: Path) -> dict:
    """{learner: {N: {split: {outcome: {value, low, high}}, seeds}}} from a comparison of
    one N's trials (its train split included: they share their training levels)."""
    return rates_by_levels(json.loads((compare([run / folder for run in runs for folder in (
        "evaluation", "evaluation-member")], out) / "summary.json").read_text()))


def average_roc(folders: list[Path], window: int, pair: tuple[float, float]) -> list[float]:
    """The seeds' ROC curves averaged vertically: mean true-positive rate at FPR_GRID."""
    curves = []
    for folder in folders:
        predictions = json.loads((folder / PREDICTION).read_text())["predictions"]
        (p,) = [p for p in predictions
                if (p["window"], p["alpha"], p["beta"]) == (window, *pair)]
        curves.append(np.interp(FPR_GRID, p["roc"]["fpr"], p["roc"]["tpr"]))
    return np.mean(curves, axis=0).round(4).tolist()


def prediction_table(runs: list[Path]) -> dict:
    """{learner: {window: {"pairs": [...], "sigma_gain": ..., "roc": ...}}} over the seeds
    predicted so far."""
    table: dict = {}
    for learner in LEARNERS:
        folders = [prediction_folder(run, learner) for run in runs
                   if (prediction_folder(run, learner) / STEPS).is_file()]
        if not folders:
            continue
        steps = [Steps.load(folder / STEPS) for folder in folders]
        by_window: dict = {}
        for window in PREDICT.windows:
            pairs = []
            for pair in PREDICT.grid:
                auc, _ = mean_auc(steps, window, pair, seed=PREDICT.seed, resamples=RESAMPLES)
                per_seed = [mean_auc([s], window, pair, resamples=1)[0].value for s in steps]
                pairs.append({"alpha": pair[0], "beta": pair[1], "auc": auc.as_dict(),
                              "per_seed": per_seed})
            gain, _ = mean_auc(steps, window, SIGMA_GAIN[0], baseline=SIGMA_GAIN[1],
                               seed=PREDICT.seed, resamples=RESAMPLES)
            positives = [int(s.labels(window).sum()) for s in steps]
            by_window[str(window)] = {
                "pairs": pairs, "sigma_gain": gain.as_dict(), "positives": positives,
                "steps": [int(s.valid_TN.sum()) for s in steps],
                "roc": {f"{a:g},{b:g}": average_roc(folders, window, (a, b))
                        for a, b in PREDICT.grid}}
        table[learner] = {"seeds": len(folders), "windows": by_window}
    return table


def plot_roc(results: dict, path: Path) -> None:
    """Rows: family x N; columns: windows; lines: way of acting x (alpha, beta)."""
    rows = [(family, n) for family in FAMILIES if family in results
            for n in sorted(results[family]["prediction"], key=int)]
    windows = [str(w) for w in PREDICT.windows]
    figure, axes = plt.subplots(len(rows), len(windows),
                                figsize=(5 * len(windows), 4 * len(rows)), squeeze=False)
    styles = {"trained": "-", "member": "--"}
    for axes_row, (family, n) in zip(axes, rows, strict=True):
        for ax, window in zip(axes_row, windows, strict=True):
            for learner, entry in results[family]["prediction"][n].items():
                for i, p in enumerate(entry["windows"][window]["pairs"]):
                    key = f"{p['alpha']:g},{p['beta']:g}"
                    ax.plot(FPR_GRID, entry["windows"][window]["roc"][key], styles[learner],
                            color=f"C{i}", label=f"{LEARNERS[learner]}, alpha {p['alpha']:g} "
                                                 f"beta {p['beta']:g}: {p['auc']['value']:.2f}")
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
            ax.set_title(f"{family}, {n} training levels, catastrophe within {window}")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_rates(results: dict, path: Path) -> None:
    """Catastrophe % and solved % on test-id and test-ood, bars by N and way of acting."""
    families = [f for f in FAMILIES if f in results]
    panels = [(split, outcome) for split in ("test-id", "test-ood")
              for outcome in ("catastrophe", "solved")]
    figure, axes = plt.subplots(len(families), len(panels),
                                figsize=(4 * len(panels), 3.4 * len(families)), squeeze=False)
    for axes_row, family in zip(axes, families, strict=True):
        table = results[family]["rates"]
        for ax, (split, outcome) in zip(axes_row, panels, strict=True):
            for i, learner in enumerate(LEARNERS):
                by_n = table.get(learner, {})
                ns = sorted(by_n, key=int)
                e = [by_n[n][split][outcome] for n in ns]
                xs = np.arange(len(ns)) + (i - 0.5) * 0.4
                ax.bar(xs, [100 * x["value"] for x in e], 0.4, color=f"C{i}",
                       yerr=[[100 * (x["value"] - x["low"]) for x in e],
                             [100 * (x["high"] - x["value"]) for x in e]],
                       capsize=2, label=LEARNERS[learner])
                ax.set_xticks(range(len(ns)), ns)
            ax.set_xlabel("training levels")
            ax.set_ylabel(f"{outcome} %")
            ax.set_title(f"{family}, {split}")
        axes_row[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report_lines(results: dict) -> list[str]:
    lines = []
    for family, data in results.items():
        for n, by_learner in data.get("decision_leads", {}).items():
            for learner, e in by_learner.items():
                lines.append(f"{family} N={n} {LEARNERS[learner]}: {e['catastrophes']} "
                             f"catastrophes, decided >= 3 steps ahead "
                             f"{100 * e['share_3_or_more']:.0f}%, >= 4 "
                             f"{100 * e['share_4_or_more']:.0f}%, median {e['median']:g}")
        for learner, by_n in data["rates"].items():
            for n, entry in sorted(by_n.items(), key=lambda item: int(item[0])):
                cells = [f"{split} catastrophe {100 * entry[split]['catastrophe']['value']:.1f}%"
                         f" solved {100 * entry[split]['solved']['value']:.1f}%"
                         for split in ("train", "test-id", "test-ood") if split in entry]
                lines.append(f"{family} N={n} {LEARNERS[learner]} ({len(entry['seeds'])} seeds): "
                             + ", ".join(cells))
        for n, by_learner in sorted(data["prediction"].items(), key=lambda item: int(item[0])):
            for learner, entry in by_learner.items():
                for window, w in entry["windows"].items():
                    aucs = ", ".join(
                        f"({p['alpha']:g}, {p['beta']:g}) {p['auc']['value']:.3f} "
                        f"[{p['auc']['low']:.3f}, {p['auc']['high']:.3f}]" for p in w["pairs"])
                    g = w["sigma_gain"]
                    lines.append(f"{family} N={n} {LEARNERS[learner]} W={window} "
                                 f"({entry['seeds']} seeds, positives {w['positives']}): AUC "
                                 f"{aucs}; sigma gain {g['value']:+.3f} "
                                 f"[{g['low']:+.3f}, {g['high']:+.3f}]")
    return lines


def main() -> None:
    args = arguments(__doc__, FAMILIES, "benchmarks/results/catastrophe_prediction")
    results: dict = {}
    for family in args.families:
        sweep = sweep_folder(family)
        if not args.summarize:
            train_missing(spec_path(family), sweep)
        by_n = evaluated_runs(sweep)
        if not args.summarize:
            predict_trials([run for runs in by_n.values() for run in runs])
        if not by_n:
            continue
        table: dict = {}
        for n, runs in sorted(by_n.items()):
            for learner, by_level in rates(runs, Path(args.results) / family / f"N{n}").items():
                table.setdefault(learner, {}).update(by_level)
        results[family] = {"rates": table, "prediction": {
            str(n): prediction_table(runs) for n, runs in sorted(by_n.items())}}
        if family == "lava-jump":
            results[family]["decision_leads"] = {
                str(n): decision_leads(runs) for n, runs in sorted(by_n.items())}
    report = {"results": results, "settings": {
        "split": PREDICT.split, "tasks": PREDICT.tasks, "windows": list(PREDICT.windows),
        "grid": [list(p) for p in PREDICT.grid], "resamples": RESAMPLES},
        **provenance(load_seconds=1.0)}
    Path(f"{args.results}.json").parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.results}.json").write_text(json.dumps(report, indent=2) + "\n")
    if results:
        plot_roc(results, Path(f"{args.results}.png"))
        plot_rates(results, Path(f"{args.results}_rates.png"))
    print("\n".join(report_lines(results)))


if __name__ == "__main__":
    main()
