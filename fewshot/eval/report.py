"""From records to what a researcher reads: summary statistics, a Markdown table and the
adaptation-curve figure. Nothing here runs a policy; everything comes from records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never opens a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from fewshot.eval import stats
from fewshot.eval.records import OUTCOME_PREFIX, Records

SPLIT_STYLE = {"train": "tab:gray", "test-id": "tab:blue", "test-ood": "tab:red"}


def curve(records: Records, split: str) -> list[dict[str, Any]]:
    """One entry per k: mean and IQM of the task scores with their intervals, and the
    rate of each outcome (a task's rate: the share of its episodes with the outcome).
    For a single task the intervals resample its evaluation episodes instead
    (`resampled`: "tasks" or "episodes")."""
    rows = records.where(split=split)
    points = []
    for k in sorted(rows.unique("k")):
        at_k = rows.where(k=k)
        strata, unit = at_k.interval_strata()
        points.append({"k": int(k), "runs": len(strata),
                       "tasks": len(at_k.unique("task")), "resampled": unit,
                       "mean": stats.estimate(strata, stats.mean, seed=k).as_dict(),
                       "iqm": stats.estimate(strata, stats.iqm, seed=k).as_dict(),
                       "per_run_mean": stats.per_run(strata),
                       "outcomes": {name: stats.estimate(
                           at_k.interval_strata(OUTCOME_PREFIX + name)[0],
                           stats.mean, seed=k).as_dict() for name in records.outcomes}})
    return points


def adaptation_gain(records: Records, split: str) -> dict[str, Any]:
    """R(K) - R(0) per task (per trial, for a single task), averaged, with its interval."""
    rows = records.where(split=split)
    last = max(rows.unique("k"))
    before, unit = rows.where(k=0).interval_strata()
    after, _ = rows.where(k=last).interval_strata()
    strata = [b - a for a, b in zip(before, after, strict=True)]  # paired by task or trial
    return {"k": int(last), "resampled": unit,
            **stats.estimate(strata, stats.mean).as_dict()}


def trial_return(records: Records, split: str) -> dict[str, Any]:
    """The return of a whole trial, R(0) + ... + R(K), per task (mean over its trials),
    averaged, with its interval: what a learner earns over K + 1 episodes (a bandit's
    total reward)."""
    rows = records.where(split=split)
    episodes = len(rows.unique("k"))
    strata = [score * episodes for score in rows.task_scores().values()]
    return {"episodes": episodes, **stats.estimate(strata, stats.mean).as_dict()}


def generalization_gap(records: Records) -> list[dict[str, Any]]:
    """mean R(k) on test-id minus on test-ood, at each k."""
    ks = sorted(records.unique("k"))
    gap = []
    for k in ks:
        rows = records.where(k=k)
        in_dist = list(rows.where(split="test-id").task_scores().values())
        out_dist = list(rows.where(split="test-ood").task_scores().values())
        gap.append({"k": int(k), **stats.difference(in_dist, out_dist, seed=k).as_dict()})
    return gap


def summarize(records: Records) -> dict[str, Any]:
    """Everything summary.json holds, for each learner in the records."""
    summary: dict[str, Any] = {}
    for learner in records.unique("learner"):
        rows = records.where(learner=learner)
        splits = rows.unique("split")
        entry: dict[str, Any] = {
            "runs": rows.unique("run"),
            "episodes": len(rows),
            "diverged_fraction": float(rows["diverged"].mean()),
            "splits": {split: {"curve": curve(rows, split),
                               "adaptation_gain": adaptation_gain(rows, split),
                               "trial_return": trial_return(rows, split)}
                       for split in splits}}
        if {"test-id", "test-ood"} <= set(splits):
            entry["generalization_gap"] = generalization_gap(rows)
        summary[learner] = entry
    return summary


def _interval(e: dict[str, float], digits: int = 1) -> str:
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def markdown_table(summary: dict[str, Any]) -> str:
    """Mean return [95% CI] and IQM at each k, per learner and split, with the
    generalization gap (test-id minus test-ood) when both were scored."""
    lines = []
    for learner, entry in summary.items():
        splits = list(entry["splits"])
        gaps = {g["k"]: g for g in entry.get("generalization_gap", [])}
        header = "| k | " + " | ".join(f"{s} mean [95% CI] | {s} IQM" for s in splits)
        header += " | gap, ID - OOD [95% CI] |" if gaps else " |"
        lines += [f"### {learner}", "", header,
                  "|---|" + "---|---|" * len(splits) + ("---|" if gaps else "")]
        points = {s: {p["k"]: p for p in entry["splits"][s]["curve"]} for s in splits}
        for k in sorted(points[splits[0]]):
            cells = [f"{_interval(points[s][k]['mean'])} | {points[s][k]['iqm']['value']:.1f}"
                     for s in splits]
            if gaps:
                cells.append(_interval(gaps[k]))
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
        for split in splits:
            gain = entry["splits"][split]["adaptation_gain"]
            lines.append(f"- adaptation gain on {split}, R({gain['k']}) - R(0): "
                         f"{_interval(gain)}")
        runs = entry["runs"]
        lines += [f"- {len(runs)} run(s): {', '.join(runs)}; {entry['episodes']} episodes, "
                  f"{100 * entry['diverged_fraction']:.1f}% diverged", ""]
        lines += _outcome_rows(entry, splits, points)
    return "\n".join(lines)


def _outcome_rows(entry: dict[str, Any], splits: list[str],
                  points: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """The outcome rates of one learner: a table per outcome, k by split."""
    names = list(next(iter(points[splits[0]].values()))["outcomes"])
    lines = []
    for name in names:
        lines += [f"Rate of `{name}` [95% CI]:", "",
                  "| k | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        for k in sorted(points[splits[0]]):
            cells = [_interval(points[s][k]["outcomes"][name], 2) for s in splits]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def headline_table(summary: dict[str, Any]) -> str:
    """Per learner and split: zero-shot R(0) and R(K) after K episodes, with 95% CIs."""
    splits = list(next(iter(summary.values()))["splits"])
    last = max(p["k"] for p in next(iter(summary.values()))["splits"][splits[0]]["curve"])
    header = "| learner | " + " | ".join(f"{s} R(0) | {s} R({last})" for s in splits) + " |"
    lines = [header, "|---|" + "---|---|" * len(splits)]
    for learner, entry in summary.items():
        cells = []
        for split in splits:
            points = {p["k"]: p for p in entry["splits"][split]["curve"]}
            cells += [_interval(points[0]["mean"]), _interval(points[last]["mean"])]
        lines.append(f"| {learner} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def outcome_table(summary: dict[str, Any]) -> str:
    """Per learner and split: each outcome's rate at k = 0 and at the last k, with 95%
    CIs; empty when the family declares no outcomes."""
    first = next(iter(summary.values()))
    splits = list(first["splits"])
    points = first["splits"][splits[0]]["curve"]
    names, last = list(points[0]["outcomes"]), max(p["k"] for p in points)
    if not names:
        return ""
    header = "| learner | " + " | ".join(f"{s} {n} k=0 | {s} {n} k={last}"
                                          for s in splits for n in names) + " |"
    lines = [header, "|---|" + "---|---|" * len(splits) * len(names)]
    for learner, entry in summary.items():
        cells = []
        for split in splits:
            at = {p["k"]: p for p in entry["splits"][split]["curve"]}
            cells += [_interval(at[k]["outcomes"][n], 2) for n in names for k in (0, last)]
        lines.append(f"| {learner} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def improvement_table(rows: list[dict[str, Any]]) -> str:
    """P(A > B) on paired tasks, zero-shot and at the last k, with 95% CIs (summary.json
    has every k)."""
    lines = ["### Probability of improvement, P(A > B) on the same tasks", "",
             "| A | B | split | k | P(A > B) [95% CI] |", "|---|---|---|---|---|"]
    ends = {min(r["k"] for r in rows), max(r["k"] for r in rows)}
    lines += [f"| {r['a']} | {r['b']} | {r['split']} | {r['k']} | {r['value']:.2f} "
              f"[{r['low']:.2f}, {r['high']:.2f}] |" for r in rows if r["k"] in ends]
    return "\n".join(lines) + "\n"


def how_to_read() -> str:
    return ("R(k) is the return of the episode a learner runs on a task after seeing k "
            "episodes of it; k = 0 is zero-shot. A task's score is the mean over its "
            "evaluation episodes; the table gives the mean (and interquartile mean) of task "
            "scores, with 95% stratified bootstrap intervals over tasks within each run.")


def plot_curves(summary: dict[str, Any], path: Path, *, title: str) -> None:
    """Mean return against k with 95% CI bands: one panel per split, one line per learner
    (or, for a single learner, ID and OOD in one panel)."""
    single = len(summary) == 1
    splits = sorted({s for e in summary.values() for s in e["splits"]},
                    key=lambda s: list(SPLIT_STYLE).index(s) if s in SPLIT_STYLE else 99)
    panels = [None] if single else splits
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False,
                             sharey=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        for learner, entry in summary.items():
            for split, data in entry["splits"].items():
                if panel is not None and split != panel:
                    continue
                k = np.array([p["k"] for p in data["curve"]])
                mean = np.array([p["mean"]["value"] for p in data["curve"]])
                low = np.array([p["mean"]["low"] for p in data["curve"]])
                high = np.array([p["mean"]["high"] for p in data["curve"]])
                label = split if single else learner
                color = SPLIT_STYLE.get(split) if single else None
                line, = ax.plot(k, mean, marker="o", label=label, color=color)
                ax.fill_between(k, low, high, alpha=0.2, color=line.get_color())
        ax.set_xlabel("episodes seen, k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title if single else panel)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("return of the next episode (mean, 95% CI)")
    if not single:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
