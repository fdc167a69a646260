"""One trial of a sweep, as a Ray Tune worker runs it: train (or resume) an ordinary run
folder, reporting each iteration's metrics to Tune, then score the trained run with the
harness. A trial that finished before (a resumed sweep) only reports its results again.

Ray imports this module in its worker processes; it must not import Ray at module level
(the driver checks that Ray is installed and says how to get it).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fewshot import plugins
from fewshot.eval.evaluation import (
    DEFAULT_FOLDER,
    RECORDS,
    SUMMARY,
    TASKS,
    evaluate_run,
    same_values,
)
from fewshot.eval.harness import EvaluationSettings
from fewshot.eval.task_sets import task_sets_from_json
from fewshot.run.checkpoint import CHECKPOINT, load_checkpoint
from fewshot.run.config import from_dict
from fewshot.run.lock import RunFolderBusyError
from fewshot.run.metrics import METRICS, read_rows
from fewshot.run.train import train
from fewshot.sweep.spec import Trial, learners_of, make_trial

LOCK_WAIT_SECONDS = 60  # a killed sweep's workers may hold a run folder a little longer


def evaluation_folder(run_dir: Path, learner: str) -> Path:
    return Path(run_dir) / (DEFAULT_FOLDER if learner == "trained"
                            else f"{DEFAULT_FOLDER}-{learner}")


def evaluated(meta: dict[str, Any], learner: str) -> bool:
    """Whether the trial's run was scored as `learner` (its evaluation folder is published)
    after all its iterations, with the SPEC's evaluate settings and task sets. A sweep
    resumed with another evaluate block (more tasks, say) scores its trials again without
    training them again; one resumed with more iterations trains them on, then scores
    them again."""
    run_dir, iterations = Path(meta["run_dir"]), meta["config"]["iterations"]
    folder = evaluation_folder(run_dir, learner)
    if not (folder / RECORDS).is_file():
        return False
    info = json.loads((folder / SUMMARY).read_text())["info"]
    if "iteration" in info:
        at_the_end = info["iteration"] >= iterations
    else:  # written before evaluations recorded it: scored when training ended
        at_the_end = not (run_dir / CHECKPOINT).is_file() or finished(run_dir, iterations)
    return at_the_end and scored_as_asked(folder, info["settings"], meta["settings"],
                                          meta.get("task_sets") or {}, meta["config"])


def scored_as_asked(folder: Path, used: dict[str, Any], settings: dict[str, Any],
                    task_sets: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> bool:
    """Whether an evaluation folder, scored with settings `used`, holds the frozen splits
    of `settings` (EvaluationSettings fields) and exactly `task_sets`, scored as
    `settings` asks."""
    wanted = {**settings, "splits": list(settings["splits"])}
    if wanted.get("horizon") is None:  # the run's own horizon was used
        wanted["horizon"] = used.get("horizon")
    if {**used, "splits": list(used["splits"])} != wanted:
        return False
    frozen = json.loads((folder / TASKS).read_text())["splits"]
    if set(frozen) != set(wanted["splits"]) | set(task_sets):
        return False
    if not task_sets:
        return True
    family = from_dict(dict(config)).family_object()
    asked = task_sets_from_json(family, {"sets": task_sets}, source="evaluate.task_sets")
    return all(same_values(frozen[name], [family.task_to_dict(t) for t in tasks])
               for name, tasks in asked.items())


def trial_meta(trial: Trial, common: dict[str, Any]) -> dict[str, Any]:
    """What a worker needs to run one trial. `common` (built by the driver) holds what
    every trial shares: runs (the folder of run folders), learners, tune_metrics (the
    SPEC fields naming the metrics Tune needs in every report, and those names),
    sweep_command (recorded in each run's manifest),
    settings (EvaluationSettings fields), task_sets (evaluate.task_sets), and for a search
    base, seed and cpus."""
    return {"name": trial.name, "group": trial.group, "config": trial.config,
            "run_dir": str(Path(common["runs"]) / trial.name),
            "learners": learners_of(common["learners"], trial.config["algo"]),
            "tune_metrics": common["tune_metrics"], "settings": common["settings"],
            "task_sets": common.get("task_sets", {}),
            "sweep_command": common["sweep_command"]}


def searched_trial(common: dict[str, Any], values: dict[str, Any]) -> Trial:
    """The trial of a setting a search chose."""
    return make_trial(common["base"], values, common["seed"], common["cpus"],
                      searched=True)


def run_trial(tune_config: dict[str, Any]) -> None:
    """Tune's function trainable: tune_config["trial"] is a trial_meta, or, in a search,
    tune_config["values"] the setting chosen and tune_config["common"] the rest."""
    from ray import tune

    if "values" in tune_config:
        common = tune_config["common"]
        spec = trial_meta(searched_trial(common, tune_config["values"]), common)
    else:
        spec = tune_config["trial"]
    plugins.load(spec["config"].get("imports", []))
    config = from_dict(dict(spec["config"]))
    run_dir = Path(spec["run_dir"])

    def report(row: dict[str, float]) -> None:
        for field, metric in spec["tune_metrics"].items():
            if metric not in row:
                raise ValueError(f"{field} {metric!r} is not a metric of this run; "
                                 f"its metrics: {sorted(row)}")
        tune.report(row)

    scored = all(evaluated(spec, learner) for learner in spec["learners"])
    # a scored trial is done, even where its checkpoint is not kept (a large replay
    # buffer, say); evaluated() is false for one with more iterations to train
    trains = not scored and not finished(run_dir, config.iterations)
    if trains:
        train_waiting_for_the_lock(config, run_dir, report=report, started_by={
            "sweep_command": spec["sweep_command"], "trial": spec["name"]})
    settings = EvaluationSettings(**{**spec["settings"], "splits": tuple(
        spec["settings"]["splits"])})
    scores: dict[str, float] = {}
    for learner in spec["learners"]:
        out = evaluation_folder(run_dir, learner)
        if trains or not evaluated(spec, learner):
            label = spec["group"] if learner == "trained" else f"{spec['group']} ({learner})"
            evaluate_run(run_dir, replace(settings), learner=learner, label=label, out=out,
                         task_sets=spec.get("task_sets") or None, progress=False)
        scores.update(final_scores(out, learner))
    tune.report({**last_row(run_dir), "evaluated": 1.0, **scores})


def last_row(run_dir: Path) -> dict[str, float]:
    """The run's last metrics row (what Tune compares trials by)."""
    columns, rows = read_rows(run_dir / METRICS)
    if columns is None or not rows:
        return {}
    return {name: float(value) for name, value in zip(columns, rows[-1], strict=True)}


def finished(run_dir: Path, iterations: int) -> bool:
    if not (run_dir / CHECKPOINT).is_file():
        return False
    return int(load_checkpoint(run_dir)["iteration"]) >= iterations


def train_waiting_for_the_lock(config: Any, run_dir: Path, *, report: Any,
                               started_by: dict[str, Any]) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            train(config, run_dir, resume=(run_dir / "config.yaml").is_file(),
                  progress=False, report=report, started_by=started_by)
            return
        except RunFolderBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def final_scores(folder: Path, learner: str) -> dict[str, float]:
    """Mean return at k = 0 and k = K on each split, for Tune's result table."""
    summary = json.loads((folder / SUMMARY).read_text())
    scores = {}
    for entry in summary["learners"].values():
        for split, values in entry["splits"].items():
            curve = values["curve"]
            for point in (curve[0], curve[-1]):
                scores[f"{learner}/{split}/R({point['k']})"] = float(point["mean"]["value"])
    return scores
