"""`fewshot evaluate` and `fewshot compare`: run folders in, records and reports out.

The last stretch of the data flow: checkpoint -> harness -> records -> stats and plots.
An evaluation folder holds records.csv (the data), tasks.json (the frozen task sets),
summary.json (statistics and settings), report.md (the table) and
adaptation-curves.png. It is written to a temporary folder and moved into place only
when complete, so a failed evaluation never leaves results that look finished.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import yaml
from tqdm import tqdm

import tasks
from fewshot import report, stats
from fewshot.adapters import (
    FinetuneAdapter,
    FixedPolicy,
    Learner,
    MAMLAdapter,
    Oracle,
    RandomPolicy,
    TrialAdapter,
)
from fewshot.checkpoint import load_checkpoint, package_versions, publish_dir
from fewshot.config import TrainConfig
from fewshot.harness import EvaluationSettings, check_splits, evaluate, freeze_tasks
from fewshot.maml import MAML
from fewshot.ppo import PPO
from fewshot.records import Records
from fewshot.references import ChoiceLearner
from fewshot.train import CONFIG, build_learner, config_from_dict

LEARNERS = ("trained", "non-adaptive", "finetune", "random", "oracle", "ucb1", "thompson")
RECORDS, TASKS, SUMMARY, REPORT, FIGURE = ("records.csv", "tasks.json", "summary.json",
                                           "report.md", "adaptation-curves.png")
DEFAULT_FOLDER = "evaluation"


# Runs and learners ----------------------------------------------------------------------

@functools.cache
def family_spaces(name: str) -> tuple[gymnasium.Space, gymnasium.Space]:
    """A family's observation and action spaces (its env is built once per process)."""
    env = tasks.get(name).make_env()
    env.close()
    return env.observation_space, env.action_space


def load_run(run_dir: Path) -> tuple[TrainConfig, MAML | PPO]:
    """A run's config and its trained learner; clear errors for anything else."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG}); "
                                "make one with `fewshot train`")
    try:
        config = config_from_dict(yaml.safe_load(config_path.read_text()))
    except (TypeError, ValueError, AttributeError, yaml.YAMLError) as error:
        raise ValueError(f"{config_path} is not a valid run config: {error}") from error
    state = load_checkpoint(run_dir)
    observation_space, action_space = family_spaces(config.family)
    discrete = isinstance(action_space, gymnasium.spaces.Discrete)
    learner = build_learner(config, obs_size=int(np.prod(observation_space.shape)),
                            action_size=int(action_space.n) if discrete
                            else int(np.prod(action_space.shape)), discrete=discrete,
                            task_size=len(tasks.get(config.family).params))
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"the checkpoint in {run_dir} does not match its {CONFIG}: "
                         f"{error}") from error
    return config, learner


def base_label(run_dir: Path) -> str:
    """The run folder's name without its seed suffix: runs of one learner share it."""
    return re.sub(r"-s\d+$", "", Path(run_dir).resolve().name)


def make_learner(kind: str, config: TrainConfig, trained: MAML | PPO, *, label: str,
                 episodes_per_step: int | None, later_step_scale: float = 1.0) -> Learner:
    """The learner to score: the run's own, its policy without adaptation, or a reference."""
    if later_step_scale != 1.0 and not (kind == "trained" and isinstance(trained, MAML)):
        raise ValueError(f"later_step_scale scales a MAML run's later inner steps; learner "
                         f"{kind} of a {config.algo} run takes none")
    _, space = family_spaces(config.family)
    discrete = isinstance(space, gymnasium.spaces.Discrete)
    if kind in ("ucb1", "thompson") or (kind == "random" and discrete):
        if not discrete:
            raise ValueError(f"learner {kind} needs discrete actions; family "
                             f"{config.family!r} has {space}")
        return ChoiceLearner(name=label, rule=kind)
    if kind == "random":
        return FixedPolicy(name=label, policy=RandomPolicy(action_size=space.shape[0]))
    if kind == "oracle":
        oracle = Oracle(family=config.family)
        oracle.name = label
        return oracle
    if kind == "finetune":
        if config.algo != "ppo":
            raise ValueError(f"learner finetune fine-tunes a ppo run's policy; this run's "
                             f"algo is {config.algo}")
        return FinetuneAdapter(name=label, learner=trained,
                               episodes_per_step=episodes_per_step or 1)
    if isinstance(trained, PPO):
        if kind == "non-adaptive":
            raise ValueError(f"learner non-adaptive is a MAML run's policy without inner "
                             f"steps; a {config.algo} run has none")
        return TrialAdapter(name=label, learner=trained)
    if kind == "non-adaptive":
        return FixedPolicy(name=label, policy=trained.policy)
    return MAMLAdapter(name=label, learner=trained,
                       episodes_per_step=episodes_per_step or config.episodes_per_task,
                       gamma=config.gamma, gae_lambda=config.gae_lambda,
                       normalize_advantages=config.normalize_advantages,
                       later_step_scale=later_step_scale)


# fewshot evaluate -----------------------------------------------------------------------

def evaluate_run(run_dir: Path, settings: EvaluationSettings, *, learner: str = "trained",
                 episodes_per_step: int | None = None, later_step_scale: float = 1.0,
                 label: str | None = None, out: Path | None = None,
                 progress: bool = True) -> Path:
    """Score a run's learner (or a reference learner on its family); returns the folder."""
    run_dir = Path(run_dir)
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {list(LEARNERS)}, got {learner!r}")
    if episodes_per_step is not None and episodes_per_step < 1:
        raise ValueError(f"episodes_per_step must be an integer >= 1, got {episodes_per_step}")
    config, trained = load_run(run_dir)
    family = tasks.get(config.family)
    check_splits(family, settings.splits)
    if settings.horizon is None and config.horizon is not None:
        settings = EvaluationSettings(**{**asdict(settings), "horizon": config.horizon})
    if label is None:
        label = {"trained": base_label(run_dir),
                 "non-adaptive": f"{base_label(run_dir)}-non-adaptive",
                 "finetune": f"{base_label(run_dir)}-finetune"}.get(learner, learner)
    scored = make_learner(learner, config, trained, label=label,
                          episodes_per_step=episodes_per_step,
                          later_step_scale=later_step_scale)
    out = Path(out) if out is not None else run_dir / (
        DEFAULT_FOLDER if learner == "trained" else f"{DEFAULT_FOLDER}-{learner}")
    task_sets = freeze_tasks(family, settings)
    total = len(settings.splits) * settings.tasks * settings.trials * (settings.episodes + 1)
    with tqdm(total=total, desc=f"evaluate {label}", unit="episode",
              disable=not progress) as bar:
        records = evaluate(scored, family, task_sets, settings, run=run_dir.resolve().name,
                           run_seed=config.seed, on_block=bar.update)
    info = {"family": family.name, "learner": label, "kind": learner,
            "run": str(run_dir), "settings": asdict(settings),
            "episodes_per_step": getattr(scored, "episodes_per_step", None),
            "later_step_scale": getattr(scored, "later_step_scale", None),
            "command": sys.argv, "versions": package_versions()}
    frozen = {"family": family.name, "seed": settings.seed,
              "splits": {split: [family.task_to_dict(t) for t in split_tasks]
                         for split, split_tasks in task_sets.items()}}
    summary = {"info": info, "learners": report.summarize(records)}
    write_folder(out, records=records, summary=summary, frozen=frozen,
                 title=f"{label} on {family.name}")
    return out


def write_folder(out: Path, *, records: Records, summary: dict[str, Any],
                 frozen: dict[str, Any], title: str) -> None:
    """Write every output to a temporary folder, then move it into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / RECORDS).write_text(records.to_csv())
        (staging / TASKS).write_text(json.dumps(frozen, indent=2) + "\n")
        (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        table = report.markdown_table(summary["learners"])
        extra = summary.get("probability_of_improvement")
        if extra:
            table += "\n" + report.improvement_table(extra)
        (staging / REPORT).write_text(f"# {title}\n\n{report.how_to_read()}\n\n{table}\n")
        report.plot_curves(summary["learners"], staging / FIGURE, title=title)
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# fewshot compare ------------------------------------------------------------------------

def load_evaluation(path: Path) -> tuple[Records, dict[str, Any], dict[str, Any]]:
    """Records, frozen tasks and info of an evaluation folder (or a run's default one)."""
    path = Path(path)
    folder = path if (path / RECORDS).is_file() else path / DEFAULT_FOLDER
    if not (folder / RECORDS).is_file():
        raise FileNotFoundError(f"{path} holds no evaluation ({RECORDS} not found there or in "
                                f"{DEFAULT_FOLDER}/); run `fewshot evaluate {path}` first")
    try:
        frozen = json.loads((folder / TASKS).read_text())
        info = json.loads((folder / SUMMARY).read_text())["info"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{folder} is not a complete evaluation: {error}") from error
    return Records.read_csv(folder / RECORDS), frozen, info


def compare(paths: Sequence[Path], out: Path) -> Path:
    """Put several evaluations side by side: one table, one figure, paired statistics.

    Evaluations with the same learner label are pooled as runs of one learner. All must
    have been run on the same frozen tasks (same family, --eval-seed and --tasks).
    """
    if len(paths) < 2:
        raise ValueError(f"compare needs at least two evaluations, got {len(paths)}")
    loaded = [load_evaluation(Path(p)) for p in paths]
    first_path, (_, first_tasks, _) = paths[0], loaded[0]
    for path, (_, frozen, _) in zip(paths[1:], loaded[1:], strict=True):
        common = set(frozen["splits"]) & set(first_tasks["splits"])
        if (frozen["family"] != first_tasks["family"] or not common
                or any(frozen["splits"][s] != first_tasks["splits"][s] for s in common)):
            raise ValueError(f"{path} and {first_path} were evaluated on different tasks "
                             f"({frozen['family']} seed {frozen['seed']} against "
                             f"{first_tasks['family']} seed {first_tasks['seed']}); evaluate "
                             "both with the same --eval-seed and --tasks")
    records = loaded[0][0]
    for extra, _, _ in loaded[1:]:
        records = records.concat(extra)
    pairs = [set(zip(recs["learner"], recs["run"], strict=True)) for recs, _, _ in loaded]
    twice = sorted(key for key in set().union(*pairs) if sum(key in p for p in pairs) > 1)
    if twice:
        raise ValueError(f"the same learner and run appear in several evaluations: {twice}; "
                         "give one of them another --label")
    summary = {"info": {"evaluations": [str(p) for p in paths], "command": sys.argv,
                        "versions": package_versions()},
               "learners": report.summarize(records),
               "probability_of_improvement": improvements(records)}
    write_folder(Path(out), records=records, summary=summary, frozen=first_tasks,
                 title=f"{first_tasks['family']}: " + " vs ".join(records.unique("learner")))
    return Path(out)


def improvements(records: Records) -> list[dict[str, Any]]:
    """P(A > B) on paired tasks, for every pair of learners, split and k both have."""
    rows = []
    for a, b in itertools.combinations(records.unique("learner"), 2):
        ra, rb = records.where(learner=a), records.where(learner=b)
        for split in ra.unique("split"):
            if split not in rb.unique("split"):
                continue
            for k in sorted(set(ra.unique("k")) & set(rb.unique("k"))):
                xa, xb = ra.where(split=split, k=k), rb.where(split=split, k=k)
                task_ids = sorted(set(xa.unique("task")) & set(xb.unique("task")))
                estimate = stats.probability_of_improvement(
                    [xa["return"][xa["task"] == t] for t in task_ids],
                    [xb["return"][xb["task"] == t] for t in task_ids], seed=int(k))
                rows.append({"a": a, "b": b, "split": split, "k": int(k),
                             **estimate.as_dict()})
    return rows
