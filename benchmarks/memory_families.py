"""Families that need memory: RL² against the references, scored by the harness.

1. bandit, n pulls per trial (n = 10 and 100): RL² (trained with trials of n pulls)
   against UCB1, Thompson sampling and uniform random pulls, on test-id and test-ood
   tasks. The n = 10 model is also scored on 100 pulls (more than it was trained on).
2. guessing-game: RL² (trials of 2 episodes) against Markov multi-task PPO and the PPO
   oracle, on fresh test-id and noisier test-ood observations.

Run folders go to benchmarks/runs/ (committed; a run resumes if it exists). Writes
benchmarks/results/memory_families.json and, per comparison, a folder with the harness's
report.md and adaptation-curves.png. Run alone on the machine:
  .venv/bin/python benchmarks/memory_families.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fewshot.checkpoint import package_versions
from fewshot.config import PPOConfig, TrainConfig
from fewshot.evaluation import compare, evaluate_run
from fewshot.harness import EvaluationSettings
from fewshot.records import Records
from fewshot.train import train

BANDIT_ITERATIONS = {10: 300, 100: 300}


def trial_totals(records: Records) -> dict[str, dict[str, float]]:
    """Per learner and split: mean and 95% normal interval of the trial's total return
    (the sum over k of R(k)), over tasks (mean over a task's trials first)."""
    out: dict[str, dict[str, float]] = {}
    for learner in records.unique("learner"):
        for split in records.where(learner=learner).unique("split"):
            rows = records.where(learner=learner, split=split)
            per_task = []
            for task in rows.unique("task"):
                mine = rows.where(task=task)
                totals = [mine.where(episode=e)["return"].sum() for e in mine.unique("episode")]
                per_task.append(np.mean(totals))
            per_task = np.array(per_task)
            half = 1.96 * per_task.std(ddof=1) / np.sqrt(per_task.size)
            out.setdefault(learner, {})[split] = {"mean": float(per_task.mean()),
                                                  "ci95": [float(per_task.mean() - half),
                                                           float(per_task.mean() + half)]}
    return out


def run(config: TrainConfig, folder: Path) -> float:
    started = time.perf_counter()
    train(config, folder, resume=(folder / "checkpoint.pt").exists(), progress=True)
    return time.perf_counter() - started


def bandit(runs: Path, results: Path, tasks: int, trials: int) -> dict:
    report = {}
    for n, iterations in BANDIT_ITERATIONS.items():
        folder = runs / f"rl2-bandit-n{n}-s0"
        config = TrainConfig(algo="rl2", family="bandit", seed=0, iterations=iterations,
                             meta_batch_size=128, gae_lambda=0.95, checkpoint_every=25,
                             ppo=PPOConfig(episodes_per_trial=n, lr=3e-3,
                                           scale_rewards=False))  # made before scaling
        seconds = run(config, folder)
        settings = EvaluationSettings(episodes=n - 1, tasks=tasks, trials=trials, seed=0)
        outs = [evaluate_run(folder, settings, learner=kind, label=label,
                             out=results / f"bandit-n{n}" / label)
                for kind, label in (("trained", "rl2"), ("ucb1", "ucb1"),
                                    ("thompson", "thompson"), ("random", "random"))]
        comparison = compare(outs, results / f"bandit-n{n}" / "comparison")
        records = Records.read_csv(comparison / "records.csv")
        report[f"n={n}"] = {"iterations": iterations, "train_seconds_this_process": seconds,
                            "trial_total": trial_totals(records)}
    # more pulls than trained on: the n = 10 model on trials of 100
    folder = runs / "rl2-bandit-n10-s0"
    settings = EvaluationSettings(episodes=99, tasks=tasks, trials=trials, seed=0)
    outs = [evaluate_run(folder, settings, learner=kind, label=label,
                         out=results / "bandit-n10-on-100" / label)
            for kind, label in (("trained", "rl2-trained-on-10"), ("ucb1", "ucb1"))]
    comparison = compare(outs, results / "bandit-n10-on-100" / "comparison")
    report["trained n=10, scored on 100 pulls"] = {
        "trial_total": trial_totals(Records.read_csv(comparison / "records.csv"))}
    return report


def guessing_game(runs: Path, results: Path, tasks: int, trials: int) -> dict:
    common = dict(family="guessing-game", seed=0, iterations=300, gae_lambda=0.95,
                  checkpoint_every=25)
    # these runs were made before reward scaling existed, and keep it off to resume
    unscaled = dict(lr=3e-3, scale_rewards=False)
    configs = {"rl2": TrainConfig(algo="rl2", meta_batch_size=128, **common,
                                  ppo=PPOConfig(episodes_per_trial=2, **unscaled)),
               "ppo": TrainConfig(algo="ppo", meta_batch_size=64, episodes_per_task=4,
                                  **common, ppo=PPOConfig(**unscaled)),
               "oracle": TrainConfig(algo="oracle", meta_batch_size=64, episodes_per_task=4,
                                     **common, ppo=PPOConfig(**unscaled))}
    seconds, outs = {}, []
    settings = EvaluationSettings(episodes=2, tasks=tasks, trials=trials, seed=0)
    for name, config in configs.items():
        folder = runs / f"{name}-guessing-game-s0"
        seconds[name] = run(config, folder)
        outs.append(evaluate_run(folder, settings, label=name,
                                 out=results / "guessing-game" / name))
    comparison = compare(outs, results / "guessing-game" / "comparison")
    summary = json.loads((comparison / "summary.json").read_text())
    curves = {learner: {split: [round(p["mean"]["value"], 3) for p in data["curve"]]
                        for split, data in entry["splits"].items()}
              for learner, entry in summary["learners"].items()}
    return {"train_seconds_this_process": seconds, "mean_return_by_k": curves}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="benchmarks/runs")
    parser.add_argument("--results", default="benchmarks/results/memory_families")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    runs, results = Path(args.runs), Path(args.results)
    started = time.perf_counter()
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpus": len(os.sched_getaffinity(0))},
        "versions": package_versions(),
        "bandit": bandit(runs, results, args.tasks, args.trials),
        "guessing_game": guessing_game(runs, results, args.tasks, args.trials),
    }
    report["wall_seconds"] = time.perf_counter() - started
    Path("benchmarks/results/memory_families.json").write_text(
        json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("bandit", "guessing_game")}, indent=2))


if __name__ == "__main__":
    main()
