"""Meta-train MAML on a family with published settings, then measure adaptation on fresh
tasks through the harness: the return before adaptation and after each inner step, with
95% bootstrap intervals over tasks.

Run folders go to benchmarks/runs/ and are committed (checkpoint, metrics: small), so a
run resumes where it stopped, in this checkout or a later one; pass --iterations to run
it further. Run (alone on the machine: the meta-update uses every core):
  .venv/bin/python benchmarks/maml_training.py --preset point-nav
  .venv/bin/python benchmarks/maml_training.py --preset cheetah-dir
  .venv/bin/python benchmarks/maml_training.py --preset cheetah-vel
Writes benchmarks/results/maml_<preset>.json and .png (return against wall clock and
against env steps, before and after adaptation), and the harness's evaluation folder
(records.csv.gz, summary.json, report.md) in benchmarks/results/maml_training/<name>/.
Settings other than the paper's get their own run folder and file names. Re-running a
finished run only evaluates it; the --eval-* flags choose the evaluation (a JSON of its
own), e.g. the MAML code's point-nav test: 3 steps on 40 episodes each, steps after the
first at half the step size:
  .venv/bin/python benchmarks/maml_training.py --preset point-nav \
      --eval-steps 3 --eval-episodes 40 --eval-later-scale 0.5
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fewshot.algos.maml.config import MAMLConfig
from fewshot.eval.evaluation import SUMMARY, base_label, evaluate_run
from fewshot.eval.harness import EvaluationSettings
from fewshot.provenance import cpus, provenance
from fewshot.run.checkpoint import CHECKPOINT, load_checkpoint
from fewshot.run.config import RunConfig
from fewshot.run.folder import write_config
from fewshot.run.train import train

# The MAML paper's settings: 20 tasks x 20 episodes, inner lr 0.1, one inner step in
# training, TRPO with KL bound 0.01, two hidden layers of 100 ReLU units. (fewshot's own
# default is tanh; on point-nav it reached only -41 after one step, against -12 with
# ReLU.) The meta-update uses every core (run these alone on the machine).
PAPER_INNER_LR = 0.1
PAPER_META_BATCH = 20
PAPER_ACTIVATION = "relu"
PAPER_MAX_KL = 0.01
PRESETS = {
    "point-nav": dict(family="point-nav", iterations=100, eval_steps=2,
                      published={"pre": -40.41, "post_1": -11.68, "post_2": -3.33}),
    "cheetah-dir": dict(family="cheetah-dir", iterations=500, eval_steps=1,
                        published={"post_1 (learn2learn, RLlib curves)": 260}),
    "cheetah-vel": dict(family="cheetah-vel", iterations=500, eval_steps=1, published={}),
}


def config_for(preset: dict, args: argparse.Namespace) -> RunConfig:
    return RunConfig(algo="maml", family=preset["family"], seed=args.seed,
                     iterations=args.iterations or preset["iterations"],
                     checkpoint_every=5, update_threads=cpus(),
                     algo_config=MAMLConfig(meta_batch_size=args.meta_batch,
                                            episodes_per_task=20, hidden_sizes=[100, 100],
                                            activation=args.activation, inner_lr=args.inner_lr,
                                            max_kl=args.max_kl,
                                            num_inner_steps=args.inner_steps,
                                            fisher_subsample=args.fisher_subsample))


def run_name(args: argparse.Namespace) -> str:
    """The preset's name, plus a suffix for each setting that differs from the paper's."""
    name = args.preset
    if args.inner_lr != PAPER_INNER_LR:
        name += f"-lr{args.inner_lr:g}"
    if args.meta_batch != PAPER_META_BATCH:
        name += f"-mb{args.meta_batch}"
    if args.activation != PAPER_ACTIVATION:
        name += f"-{args.activation}"
    if args.inner_steps != 1:
        name += f"-steps{args.inner_steps}"
    if args.max_kl != PAPER_MAX_KL:
        name += f"-kl{args.max_kl:g}"
    if args.fisher_subsample != 1:
        name += f"-fs{args.fisher_subsample}"
    if args.wall_minutes is not None:
        name += f"-{args.wall_minutes:g}min"
    if args.continue_from:
        name += f"-from{load_checkpoint(Path(args.continue_from))['iteration']}"
    return name


def start_from(source: Path, run_dir: Path, config: RunConfig) -> None:
    """A new run folder holding `source`'s checkpoint and metrics with this run's config,
    so that training resumes from there under the new settings."""
    run_dir.mkdir(parents=True)
    for name in ("checkpoint.pt", "metrics.csv"):
        shutil.copy2(source / name, run_dir / name)
    write_config(run_dir, config)
    (run_dir / "continued_from.txt").write_text(f"{source}\n")


def train_for(config: RunConfig, run_dir: Path, minutes: float) -> None:
    """Train in chunks of `checkpoint_every` iterations while the next chunk, as long as
    the last one took, still ends within `minutes` of wall time from now (everything the
    process does counts: sampling, updates, checkpoints)."""
    deadline = time.perf_counter() + 60 * minutes
    done = int(load_checkpoint(run_dir)["iteration"]) if (run_dir / CHECKPOINT).exists() else 0
    chunk_seconds = 0.0
    while time.perf_counter() + chunk_seconds <= deadline:
        started = time.perf_counter()
        done += config.checkpoint_every
        train(dataclasses.replace(config, iterations=done), run_dir,
              resume=(run_dir / CHECKPOINT).exists())
        chunk_seconds = time.perf_counter() - started


def evaluate(run_dir: Path, out: Path, *, steps: int, num_tasks: int, trials: int,
             episodes: int, later_scale: float) -> dict[str, dict[str, float]]:
    """The harness on `num_tasks` frozen test-id tasks x `trials` trials: R(0) before
    adaptation and R(i x episodes) after i inner steps, each step on `episodes` episodes
    of the task; steps after the first at `later_scale` x the inner lr. Mean and 95% CI."""
    settings = EvaluationSettings(splits=("test-id",), episodes=episodes * steps,
                                  tasks=num_tasks, trials=trials, seed=0)
    folder = evaluate_run(run_dir, settings, options={"episodes_per_step": episodes,
                                                      "later_step_scale": later_scale},
                          out=out)
    summary = json.loads((folder / SUMMARY).read_text())
    curve = {p["k"]: p["mean"] for p in
             summary["learners"][base_label(run_dir)]["splits"]["test-id"]["curve"]}
    return {("pre" if i == 0 else f"post_{i}"): curve[i * episodes] for i in range(steps + 1)}


def read_curve(run_dir: Path) -> dict[str, list[float]]:
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    seconds = np.cumsum([float(r["sample_seconds"]) + float(r["update_seconds"])
                         for r in rows])
    return {"iteration": [int(r["iteration"]) for r in rows],
            "env_steps": [int(r["env_steps"]) for r in rows],
            "wall_seconds": seconds.tolist(),
            "pre": [float(r["return_step0"]) for r in rows],
            "post": [float(r["return_step1"]) for r in rows]}


def plot(curve: dict, title: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x, label in ((axes[0], np.array(curve["wall_seconds"]) / 60, "wall clock (min)"),
                         (axes[1], np.array(curve["env_steps"]) / 1e6, "env steps (M)")):
        ax.plot(x, curve["pre"], label="before adaptation")
        ax.plot(x, curve["post"], label="after 1 inner step")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean training return")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inner-lr", type=float, default=PAPER_INNER_LR,
                        help="inner step size (default: the paper's %(default)s); another "
                             "value gets its own run folder and result files")
    parser.add_argument("--meta-batch", type=int, default=PAPER_META_BATCH,
                        help="tasks per meta-iteration (default: the paper's %(default)s)")
    parser.add_argument("--inner-steps", type=int, default=1,
                        help="inner steps in meta-training (default: the paper's 1)")
    parser.add_argument("--activation", choices=["tanh", "relu"], default=PAPER_ACTIVATION,
                        help="hidden nonlinearity (default: the paper's %(default)s)")
    parser.add_argument("--max-kl", type=float, default=PAPER_MAX_KL,
                        help="TRPO's bound on the mean KL, summed over action dimensions "
                             "(default: the paper's %(default)s)")
    parser.add_argument("--fisher-subsample", type=int, default=1,
                        help="TRPO's curvature on every n-th episode (default: every one)")
    parser.add_argument("--wall-minutes", type=float, default=None,
                        help="train for this much wall time instead of --iterations (a "
                             "fresh run of its own; stops before a chunk of "
                             "checkpoint_every iterations would end past it)")
    parser.add_argument("--continue-from", metavar="RUN", default=None,
                        help="start from another run's last checkpoint (weights, iteration "
                             "count, metrics) under this command's settings")
    parser.add_argument("--eval-tasks", type=int, default=40)
    parser.add_argument("--eval-trials", type=int, default=5,
                        help="trials per task in the evaluation (default: %(default)s)")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="inner steps in the evaluation (default: the preset's)")
    parser.add_argument("--eval-episodes", type=int, default=20,
                        help="episodes per task for each evaluation step (default: as in "
                             "training)")
    parser.add_argument("--eval-later-scale", type=float, default=1.0,
                        help="step size of evaluation steps after the first, as a multiple "
                             "of the inner lr. The MAML code's point-nav test used 40 "
                             "episodes and 0.5")
    parser.add_argument("--runs", default="benchmarks/runs",
                        help="run folders; kept in the repository so long runs can resume")
    parser.add_argument("--results", default="benchmarks/results")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    config = config_for(preset, args)
    name = run_name(args)
    run_dir = Path(args.runs) / f"maml-{name}-s{args.seed}"
    curve_name = name if args.seed == 0 else f"{name}-s{args.seed}"  # seed 0 came first
    result_name = curve_name  # another evaluation of the same run gets its own JSON
    eval_steps = args.eval_steps or preset["eval_steps"]
    if (args.eval_steps, args.eval_episodes, args.eval_later_scale) != (None, 20, 1.0):
        result_name += (f"-eval{eval_steps}x"
                        f"{args.eval_episodes}ep-later{args.eval_later_scale:g}")
    if args.continue_from and not run_dir.exists():
        start_from(Path(args.continue_from), run_dir, config)
    started = time.perf_counter()
    if args.wall_minutes is not None:
        train_for(config, run_dir, args.wall_minutes)
    else:
        train(config, run_dir, resume=(run_dir / CHECKPOINT).exists())
    train_seconds = time.perf_counter() - started
    results = Path(args.results)
    adaptation = evaluate(run_dir, results / "maml_training" / result_name, steps=eval_steps,
                          num_tasks=args.eval_tasks, trials=args.eval_trials,
                          episodes=args.eval_episodes, later_scale=args.eval_later_scale)
    curve = read_curve(run_dir)
    plot(curve, f"MAML-TRPO on {args.preset} ({args.meta_batch} tasks x 20 episodes, "
         f"inner lr {args.inner_lr:g}, {args.activation})", results / f"maml_{curve_name}.png")
    report = {
        **provenance(load_seconds=1.0),
        "config": {**{k: v for k, v in dataclasses.asdict(config).items()
                      if k != "algo_config"},
                   "maml": dataclasses.asdict(config.algo_config)},
        "iterations_done": len(curve["iteration"]),
        "env_steps": curve["env_steps"][-1],
        "train_wall_seconds_this_process": train_seconds,
        "train_wall_seconds_total": curve["wall_seconds"][-1],
        "evaluation": {"split": "test-id", "tasks": args.eval_tasks,
                       "trials": args.eval_trials, "episodes_per_step": args.eval_episodes,
                       "later_step_scale": args.eval_later_scale,
                       "folder": str(results / "maml_training" / result_name),
                       **adaptation},
        "published": preset["published"],
        "curve": curve,
    }
    (results / f"maml_{result_name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("iterations_done", "env_steps",
                                             "train_wall_seconds_total", "evaluation",
                                             "published")}, indent=2))


if __name__ == "__main__":
    main()
