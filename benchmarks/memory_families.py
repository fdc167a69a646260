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
import time
from pathlib import Path

from fewshot.algos.ppo.config import MarkovPPOConfig, RL2Config
from fewshot.eval.evaluation import SUMMARY, compare, evaluate_run
from fewshot.eval.harness import EvaluationSettings
from fewshot.provenance import provenance
from fewshot.run.config import RunConfig
from fewshot.run.train import train

BANDIT_ITERATIONS = {10: 300, 100: 300}


def trial_totals(comparison: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per learner and split: the mean return of a whole trial (R(0) + ... + R(K)) over
    tasks, with its 95% bootstrap interval (from the harness's summary)."""
    summary = json.loads((comparison / SUMMARY).read_text())
    return {learner: {split: data["trial_return"] for split, data in entry["splits"].items()}
            for learner, entry in summary["learners"].items()}


def run(config: RunConfig, folder: Path) -> float:
    started = time.perf_counter()
    train(config, folder, resume=(folder / "checkpoint.pt").exists(), progress=True)
    return time.perf_counter() - started


def bandit(runs: Path, results: Path, tasks: int, trials: int) -> dict:
    report = {}
    for n, iterations in BANDIT_ITERATIONS.items():
        folder = runs / f"rl2-bandit-n{n}-s0"
        config = RunConfig(algo="rl2", family="bandit", seed=0, iterations=iterations,
                           checkpoint_every=25,
                           algo_config=RL2Config(meta_batch_size=128, gae_lambda=0.95,
                                                 episodes_per_trial=n, lr=3e-3,
                                                 scale_rewards=False))  # made before scaling
        seconds = run(config, folder)
        settings = EvaluationSettings(episodes=n - 1, tasks=tasks, trials=trials, seed=0)
        outs = [evaluate_run(folder, settings, learner=kind, label=label,
                             out=results / f"bandit-n{n}" / label)
                for kind, label in (("trained", "rl2"), ("ucb1", "ucb1"),
                                    ("thompson", "thompson"), ("random", "random"))]
        comparison = compare(outs, results / f"bandit-n{n}" / "comparison")
        report[f"n={n}"] = {"iterations": iterations, "train_seconds_this_process": seconds,
                            "trial_total": trial_totals(comparison)}
    # more pulls than trained on: the n = 10 model on trials of 100
    folder = runs / "rl2-bandit-n10-s0"
    settings = EvaluationSettings(episodes=99, tasks=tasks, trials=trials, seed=0)
    outs = [evaluate_run(folder, settings, learner=kind, label=label,
                         out=results / "bandit-n10-on-100" / label)
            for kind, label in (("trained", "rl2-trained-on-10"), ("ucb1", "ucb1"))]
    comparison = compare(outs, results / "bandit-n10-on-100" / "comparison")
    report["trained n=10, scored on 100 pulls"] = {"trial_total": trial_totals(comparison)}
    return report


def guessing_game(runs: Path, results: Path, tasks: int, trials: int) -> dict:
    common = dict(family="guessing-game", seed=0, iterations=300, checkpoint_every=25)
    # these runs were made before reward scaling existed, and keep it off to resume
    unscaled = dict(lr=3e-3, scale_rewards=False, gae_lambda=0.95)
    markov = MarkovPPOConfig(meta_batch_size=64, episodes_per_task=4, **unscaled)
    configs = {"rl2": RunConfig(algo="rl2", **common, algo_config=RL2Config(
                   meta_batch_size=128, episodes_per_trial=2, **unscaled)),
               "ppo": RunConfig(algo="ppo", **common, algo_config=markov),
               "oracle": RunConfig(algo="oracle", **common, algo_config=markov)}
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
        **provenance(load_seconds=1.0),
        "bandit": bandit(runs, results, args.tasks, args.trials),
        "guessing_game": guessing_game(runs, results, args.tasks, args.trials),
    }
    report["wall_seconds"] = time.perf_counter() - started
    Path("benchmarks/results/memory_families.json").write_text(
        json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("bandit", "guessing_game")}, indent=2))


if __name__ == "__main__":
    main()
