"""cheetah-vel: RL², MAML, multi-task PPO, its fine-tuning and the PPO oracle, scored by
the harness on the same frozen test-id and test-ood tasks, k = 0..3 episodes seen.

- RL², ppo (and its fine-tuning) and oracle: the sweep benchmarks/cheetah_vel_comparison.yaml
  (3 seeds each, the same env steps per run, one core per run), trained and scored by
  `fewshot sweep` in benchmarks/sweeps/cheetah-vel-comparison. An interrupted sweep is
  resumed; a finished one only reports again.
- MAML: the run(s) of `benchmarks/maml_training.py --preset cheetah-vel` found under
  benchmarks/runs, scored here with the sweep's evaluation settings and one inner step
  after each episode (k counts episodes, as for the others). Reported apart: MAML as
  meta-trained, one step on 20 episodes, R(0) and R(20).

Writes benchmarks/results/cheetah_vel_comparison.json and, in
benchmarks/results/cheetah_vel_comparison/, MAML's evaluations and the comparison of all
learners (records, report.md, adaptation-curves.png). Run alone on the machine:
  .venv/bin/python benchmarks/cheetah_vel_comparison.py
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from fewshot.eval.evaluation import compare, evaluate_run
from fewshot.eval.harness import EvaluationSettings
from fewshot.provenance import provenance
from fewshot.run.metrics import METRICS, read_rows
from fewshot.sweep.driver import SPEC_COPY, run_sweep
from fewshot.sweep.spec import learners_of, load_spec
from fewshot.sweep.trial import evaluation_folder

FAMILY = "cheetah-vel"
MAML_STEP_EPISODES = 20  # the MAML paper's protocol: one step on 20 episodes


def evaluate_one(folder: Path, settings: EvaluationSettings, label: str, out: Path,
                 episodes_per_step: int) -> str:
    path = evaluate_run(folder, settings, learner="trained", label=label, out=out,
                        options={"episodes_per_step": episodes_per_step}, progress=False)
    print(f"evaluated {label} ({folder.name})", flush=True)
    return str(path)


def train_minutes(run_dir: Path) -> float:
    """Sampling and update time over the run's iterations, from its metrics.csv."""
    columns, rows = read_rows(run_dir / METRICS)
    sample, update = columns.index("sample_seconds"), columns.index("update_seconds")
    return round(sum(float(row[sample]) + float(row[update]) for row in rows) / 60, 1)


def curve(points: list[dict]) -> list[dict]:
    return [{"k": p["k"], "mean": round(p["mean"]["value"], 1),
             "ci95": [round(p["mean"]["low"], 1), round(p["mean"]["high"], 1)]}
            for p in points]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="benchmarks/cheetah_vel_comparison.yaml")
    parser.add_argument("--sweep", default="benchmarks/sweeps/cheetah-vel-comparison")
    parser.add_argument("--runs", default="benchmarks/runs", help="where MAML's runs are")
    parser.add_argument("--results", default="benchmarks/results/cheetah_vel_comparison")
    parser.add_argument("--workers", type=int, default=2, help="MAML evaluations at once")
    args = parser.parse_args()
    spec_path, sweep, results = Path(args.spec), Path(args.sweep), Path(args.results)
    started = time.perf_counter()

    maml_runs = sorted(Path(args.runs).glob(f"maml-{FAMILY}-s*"))
    if not maml_runs:
        raise SystemExit(f"no MAML run in {args.runs}: run benchmarks/maml_training.py "
                         "--preset cheetah-vel first")
    summary = run_sweep(spec_path, sweep, resume=(sweep / SPEC_COPY).is_file(),
                        progress=False)
    if summary["counts"] != {"evaluated": len(summary["trials"])}:
        raise SystemExit(f"the sweep did not score every trial: {summary['counts']}; "
                         f"see {sweep / 'sweep.json'}")
    spec = load_spec(spec_path)
    swept = [evaluation_folder(Path(row["run_dir"]), learner)
             for row, trial in zip(summary["trials"], spec.trials, strict=True)
             for learner in learners_of(spec.learners, trial.config["algo"])]

    settings = spec.settings  # MAML is scored as the sweep's trials are
    maml_protocol = replace(settings, episodes=MAML_STEP_EPISODES)
    with ProcessPoolExecutor(args.workers) as pool:
        per_episode = [pool.submit(evaluate_one, folder, settings, "maml",
                                   results / f"maml-{folder.name}", 1)
                       for folder in maml_runs]
        as_trained = [pool.submit(evaluate_one, folder, maml_protocol,
                                  "maml-20-episode-step",
                                  results / f"maml-20-episode-step-{folder.name}",
                                  MAML_STEP_EPISODES)
                      for folder in maml_runs]
        maml_paths = [Path(f.result()) for f in per_episode]
        as_trained_paths = [Path(f.result()) for f in as_trained]
    comparison = compare([*swept, *maml_paths], results / "comparison")
    compared = json.loads((comparison / "summary.json").read_text())

    report = {
        **provenance(load_seconds=1.0),
        "settings": {"spec": str(spec_path), "sweep": str(sweep),
                     "maml_runs": [str(p) for p in maml_runs],
                     "evaluation": {"episodes": settings.episodes, "tasks": settings.tasks,
                                    "trials": settings.trials, "seed": settings.seed}},
        "train_minutes": {row["name"]: train_minutes(Path(row["run_dir"]))
                          for row in summary["trials"]},
        "mean_return_by_k": {learner: {split: curve(data["curve"])
                                       for split, data in entry["splits"].items()}
                             for learner, entry in compared["learners"].items()},
        "maml_one_step_on_20_episodes": {
            path.name: {split: [p for p in curve(data["curve"])
                                if p["k"] in (0, MAML_STEP_EPISODES)]
                        for split, data in json.loads((path / "summary.json").read_text())
                        ["learners"]["maml-20-episode-step"]["splits"].items()}
            for path in as_trained_paths},
        "wall_seconds": time.perf_counter() - started,
    }
    Path(f"{results}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["mean_return_by_k"], indent=2))


if __name__ == "__main__":
    main()
