"""The demo, what `make demo` runs: the whole data flow on point-nav in a few minutes.

Meta-train MAML (the MAML paper's point-nav settings, with fewer iterations: it
converges in about 20), then score four learners on the same frozen test-id and
test-ood tasks: MAML, its policy never adapted, the oracle told the goal and the random
policy. Prints the headline table; the full report and figure go to OUT/comparison/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fewshot.algos.maml.config import MAMLConfig
from fewshot.eval.evaluation import FIGURE, REPORT, SUMMARY, compare, evaluate_run
from fewshot.eval.harness import EvaluationSettings
from fewshot.eval.report import headline_table, outcome_table
from fewshot.run.checkpoint import CHECKPOINT
from fewshot.run.config import RunConfig
from fewshot.run.train import train

# learner -> its label in the tables (None: the default, named after the run)
LEARNERS = {"trained": None, "non-adaptive": None, "scripted-oracle": "oracle", "random": None}
# MAML adapts after 20 episodes (its training batch per inner step), so K = 20 shows
# R(k) before and after its first step.
SETTINGS = EvaluationSettings(episodes=20, tasks=20, trials=5, seed=0)


# torch's thread count sets the order of its sums, so it is fixed, not the machine's core
# count: the demo gives the same numbers, bit for bit, on any machine. One thread: two
# make the update 1.5x faster on an idle 2-core machine, but 15-25x slower as soon as
# anything else runs there (OpenMP's threads spin at every parallel region and stall
# while one is descheduled: 86-129 s per update instead of 3.7 s, measured beside a
# sweep's trials; docs/performance.md), and the demo should take minutes on any machine.
UPDATE_THREADS = 1


def demo_config(iterations: int) -> RunConfig:
    return RunConfig(algo="maml", family="point-nav", seed=0, iterations=iterations,
                     checkpoint_every=5, update_threads=UPDATE_THREADS,
                     algo_config=MAMLConfig(meta_batch_size=20, episodes_per_task=20,
                                            hidden_sizes=[100, 100], activation="relu",
                                            inner_lr=0.1, max_kl=0.01))


def run_demo(out: Path, *, iterations: int = 30, progress: bool = True) -> Path:
    """Train (or finish training) the demo run in OUT, evaluate, compare; returns the
    comparison folder."""
    out = Path(out)
    run_dir = out / "maml-point-nav-s0"
    resume = (run_dir / CHECKPOINT).is_file()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # the demo's own folder, stopped before its first checkpoint
    print(f"1/3 meta-training MAML on point-nav ({iterations} iterations) in {run_dir}",
          flush=True)
    train(demo_config(iterations), run_dir, resume=resume, progress=progress)
    print("2/3 evaluating MAML, its non-adaptive policy, the oracle and the random policy "
          f"on {SETTINGS.tasks} test-id and {SETTINGS.tasks} test-ood tasks", flush=True)
    folders = [evaluate_run(run_dir, SETTINGS, learner=kind, label=label,
                            out=out / f"evaluation-{kind}", progress=progress)
               for kind, label in LEARNERS.items()]
    print("3/3 comparing", flush=True)
    comparison = compare(folders, out / "comparison")
    print()
    summary = json.loads((comparison / SUMMARY).read_text())
    print(headline_table(summary["learners"]))
    outcomes = outcome_table(summary["learners"])
    if outcomes:
        print(f"\nEpisode outcomes (rate [95% CI]):\n\n{outcomes}")
    print(f"\nfull table: {comparison / REPORT}\nfigure:     {comparison / FIGURE}")
    return comparison
