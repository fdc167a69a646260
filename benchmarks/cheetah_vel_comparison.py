"""cheetah-vel: RL², MAML, multi-task PPO, its fine-tuning and the PPO oracle, scored by
the harness on the same frozen test-id and test-ood tasks, k = 0..3 episodes seen.

- RL², ppo and oracle: `--seeds` runs each, trained for the same number of env steps
  (`--iterations` x 32 tasks x 4 episodes x 200 steps); RL² sees trials of 4 episodes.
- MAML: the run(s) of `benchmarks/maml_training.py --preset cheetah-vel` found under
  benchmarks/runs, with one inner step after each episode (k counts episodes, as for the
  others). Reported apart: MAML as meta-trained, one step on 20 episodes, R(0) and R(20).
- finetune: each ppo run's policy, fine-tuned by PPO on the episodes seen.

Training runs go two at a time, one core each (`--workers`); run folders go to
benchmarks/runs/ and resume if they exist. Writes benchmarks/results/cheetah_vel_comparison.json
and, in benchmarks/results/cheetah_vel_comparison/, the harness's report.md and
adaptation-curves.png. Run alone on the machine:
  .venv/bin/python benchmarks/cheetah_vel_comparison.py
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fewshot.algos.ppo.config import MarkovPPOConfig, RL2Config
from fewshot.eval.evaluation import compare, evaluate_run
from fewshot.eval.harness import EvaluationSettings
from fewshot.provenance import provenance
from fewshot.run.config import RunConfig
from fewshot.run.train import train

FAMILY = "cheetah-vel"
TASKS_PER_ITERATION = 32
EPISODES_PER_TRIAL = 4  # k = 0..3


def configs(seed: int, iterations: int) -> dict[str, RunConfig]:
    """One core per run (nthread 1), the same env steps for every algorithm."""
    common = dict(family=FAMILY, seed=seed, iterations=iterations, checkpoint_every=10,
                  nthread=1, torch_threads=1, update_threads=1)
    learning = dict(meta_batch_size=TASKS_PER_ITERATION, gae_lambda=0.95)
    # The Markov baselines take 320 minibatch steps per iteration (10 epochs x 32
    # minibatches of 4 episodes); RL² keeps the default 16, as each of its minibatch steps
    # back-propagates through 800 GRU steps (about 0.15 s on one core).
    markov = MarkovPPOConfig(ppo_epochs=10, minibatches=32,
                             episodes_per_task=EPISODES_PER_TRIAL, **learning)
    return {
        "rl2": RunConfig(algo="rl2", **common, algo_config=RL2Config(
            episodes_per_trial=EPISODES_PER_TRIAL, **learning)),
        "ppo": RunConfig(algo="ppo", **common, algo_config=markov),
        "oracle": RunConfig(algo="oracle", **common, algo_config=markov),
    }


def train_one(config: RunConfig, folder: Path) -> tuple[str, float]:
    started = time.perf_counter()
    train(config, folder, resume=(folder / "checkpoint.pt").exists(), progress=False)
    seconds = time.perf_counter() - started
    print(f"trained {folder} in {seconds / 60:.1f} min", flush=True)
    return str(folder), seconds


def evaluate_one(folder: Path, settings: EvaluationSettings, learner: str, label: str,
                 out: Path, episodes_per_step: int | None) -> str:
    path = evaluate_run(folder, settings, learner=learner, label=label, out=out,
                        options={"episodes_per_step": episodes_per_step}, progress=False)
    print(f"evaluated {label} ({folder.name})", flush=True)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="benchmarks/runs")
    parser.add_argument("--results", default="benchmarks/results/cheetah_vel_comparison")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=40, help="tasks per split")
    parser.add_argument("--trials", type=int, default=2, help="trials per task")
    args = parser.parse_args()
    runs, results = Path(args.runs), Path(args.results)
    started = time.perf_counter()

    jobs = {runs / f"{name}-{FAMILY}-s{seed}": config
            for seed in range(args.seeds)
            for name, config in configs(seed, args.iterations).items()}
    with ProcessPoolExecutor(args.workers) as pool:
        train_seconds = dict(pool.map(train_one, jobs.values(), jobs.keys()))

    maml_runs = sorted(runs.glob(f"maml-{FAMILY}-s*"))
    if not maml_runs:
        raise SystemExit(f"no MAML run in {runs}: run benchmarks/maml_training.py "
                         "--preset cheetah-vel first")
    settings = EvaluationSettings(episodes=EPISODES_PER_TRIAL - 1, tasks=args.tasks,
                                  trials=args.trials, seed=0)
    maml_protocol = EvaluationSettings(episodes=20, tasks=args.tasks,
                                                trials=args.trials, seed=0)
    evaluations = []  # (run folder, learner kind, label, episodes per step)
    for folder in jobs:
        name = folder.name.split("-")[0]
        evaluations.append((folder, "trained", name, None))
        if name == "ppo":
            evaluations.append((folder, "finetune", "ppo-finetune", None))
    evaluations += [(folder, "trained", "maml", 1) for folder in maml_runs]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(evaluate_one, folder, settings, kind, label,
                               results / f"{label}-{folder.name}", per_step)
                   for folder, kind, label, per_step in evaluations]
        as_trained = [pool.submit(evaluate_one, folder, maml_protocol, "trained",
                                  "maml-20-episode-step",
                                  results / f"maml-20-episode-step-{folder.name}", 20)
                      for folder in maml_runs]
        paths = [Path(f.result()) for f in futures]
        as_trained_paths = [Path(f.result()) for f in as_trained]
    comparison = compare(paths, results / "comparison")
    summary = json.loads((comparison / "summary.json").read_text())

    def curve(points: list[dict]) -> list[dict]:
        return [{"k": p["k"], "mean": round(p["mean"]["value"], 1),
                 "ci95": [round(p["mean"]["low"], 1), round(p["mean"]["high"], 1)]}
                for p in points]

    report = {
        **provenance(load_seconds=1.0),
        "settings": {"iterations": args.iterations, "seeds": args.seeds,
                     "env_steps_per_run": args.iterations * TASKS_PER_ITERATION
                     * EPISODES_PER_TRIAL * 200,
                     "maml_runs": [str(p) for p in maml_runs],
                     "evaluation": {"episodes": settings.episodes, "tasks": settings.tasks,
                                    "trials": settings.trials, "seed": settings.seed}},
        "train_seconds_this_process": train_seconds,
        "mean_return_by_k": {learner: {split: curve(data["curve"])
                                       for split, data in entry["splits"].items()}
                             for learner, entry in summary["learners"].items()},
        "maml_one_step_on_20_episodes": {
            path.name: {split: [p for p in curve(data["curve"]) if p["k"] in (0, 20)]
                        for split, data in json.loads((path / "summary.json").read_text())
                        ["learners"]["maml-20-episode-step"]["splits"].items()}
            for path in as_trained_paths},
        "wall_seconds": time.perf_counter() - started,
    }
    Path(f"{results}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["mean_return_by_k"], indent=2))


if __name__ == "__main__":
    main()
