"""`fewshot predict`: would an ensemble's disagreement have warned of its catastrophes?

A run's learner (a fixed agent over an ensemble: `ensemble`, `leep`, `dqn`) plays one
episode per trial on a frozen split, the same tasks `fewshot evaluate` freezes for that
seed; every member's value of every state is recorded, and `fewshot.eval.prediction`
scores U = alpha mu + beta sigma against "a catastrophe within W steps". The prediction
folder holds prediction.json (settings, provenance, and per window and (alpha, beta):
counts, the AUC with its bootstrap CI over levels, the ROC curve), roc.png (one
panel per window, one curve per (alpha, beta)) and steps.npz (the step record every
number is computed from: `fewshot.eval.prediction.Steps`). Like every output it is written to a
temporary folder and moved into place only when complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import tasks
from fewshot.collect import Batch, Collector
from fewshot.eval.evaluation import default_label, make_learner
from fewshot.eval.harness import EvaluationSettings, freeze_tasks
from fewshot.eval.prediction import GRID, WINDOWS, Prediction, Steps, predict
from fewshot.eval.stats import RESAMPLES
from fewshot.provenance import provenance
from fewshot.run.checkpoint import publish_dir
from fewshot.run.folder import load_run
from fewshot.run.lock import exclusive
from fewshot.runtime import derived_seed, torch_threads

PREDICTION, FIGURE, STEPS = "prediction.json", "roc.png", "steps.npz"
NOISE_KEY = 11  # the episodes' noise: derived_seed(seed, NOISE_KEY)


@dataclass(frozen=True)
class PredictionSettings:
    """Which episodes are scored, and how."""

    split: str = "test-id"
    tasks: int = 100          # frozen tasks (levels) of the split
    trials: int = 1           # episodes per task
    seed: int = 0             # the frozen tasks, the episodes' noise and the bootstrap
    windows: tuple[int, ...] = WINDOWS
    grid: tuple[tuple[float, float], ...] = GRID
    resamples: int = RESAMPLES


def predict_run(run_dir: Path, settings: PredictionSettings, *, learner: str = "trained",
                out: Path | None = None) -> Path:
    """Play the run's learner on the split's frozen tasks and score its ensemble's
    predictions of catastrophes; returns the prediction folder."""
    run_dir = Path(run_dir)
    batch, family, label = play_split(run_dir, settings, learner=learner)
    steps = Steps.of_batch(batch, label)
    predictions = predict(steps, windows=settings.windows, grid=settings.grid,
                          seed=settings.seed, resamples=settings.resamples)
    out = Path(out) if out is not None else run_dir / f"prediction-{learner}-{settings.split}"
    info = {"family": family.name, "family_options": dict(family.options), "learner": label,
            "kind": learner, "run": str(run_dir), "settings": asdict(settings),
            "episodes": len(steps.level_N),
            "catastrophes": int(steps.catastrophe_TN[steps.valid_TN].sum()),
            **provenance()}
    write_prediction(out, info, predictions, steps, title=f"{label} on {family.name} "
                                                          f"{settings.split}")
    return out


def play_split(run_dir: Path, settings: PredictionSettings, *, learner: str = "trained"
               ) -> tuple[Batch, tasks.TaskFamily, str]:
    """The episodes a prediction scores: the run's learner, a fixed agent over an
    ensemble, played on the split's frozen tasks (the batch, the family, the learner's
    label)."""
    config, model = load_run(run_dir)
    family = config.family_object()
    if "catastrophe" not in family.outcomes:
        raise ValueError(f"catastrophe prediction needs a family with a `catastrophe` "
                         f"outcome; {family.name!r} declares {list(family.outcomes)}")
    label = default_label(learner, config, run_dir)
    agent = getattr(make_learner(learner, config, model, label=label), "agent", None)
    if agent is None:
        raise ValueError(f"catastrophe prediction needs an ensemble's values; learner "
                         f"{learner!r} of this {config.algo} run is not a fixed agent over "
                         "an ensemble")
    frozen = EvaluationSettings(splits=(settings.split,), episodes=0, tasks=settings.tasks,
                                trials=settings.trials, seed=settings.seed)
    task_list = freeze_tasks(family, frozen)[settings.split]
    collector = Collector(family=family, num_envs=len(task_list) * settings.trials,
                          horizon=config.horizon)
    with torch_threads(config.torch_threads):
        batch = collector.collect(agent, task_list, trials_per_task=settings.trials,
                                  seed=derived_seed(settings.seed, NOISE_KEY))
    return batch, family, label


def write_prediction(out: Path, info: dict, predictions: Sequence[Prediction], steps: Steps,
                     *, title: str) -> None:
    """prediction.json, roc.png and steps.npz, written to a temporary folder, then moved
    into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (staging / PREDICTION).write_text(json.dumps(
            {"info": info, "predictions": [p.as_dict() for p in predictions]}, indent=2)
            + "\n")
        plot_roc(predictions, staging / FIGURE, title=title)
        steps.save(staging / STEPS)
        with exclusive(out.parent):
            publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def plot_roc(predictions: Sequence[Prediction], path: Path, *, title: str) -> None:
    """One panel per window, one ROC curve per (alpha, beta), the AUC in the legend."""
    windows = sorted({p.window for p in predictions})
    figure, axes = plt.subplots(1, len(windows), figsize=(4.5 * len(windows), 4.2),
                                squeeze=False)
    for ax, window in zip(axes[0], windows, strict=True):
        for p in (p for p in predictions if p.window == window and p.roc is not None):
            ax.plot(p.roc.fpr, p.roc.tpr, label=f"alpha {p.alpha:g}, beta {p.beta:g}: "
                                                f"AUC {p.auc.value:.2f}")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"catastrophe within {window} step{'s' if window > 1 else ''}")
        ax.legend(fontsize=7, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
