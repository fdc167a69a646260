"""`fewshot evaluate` and `fewshot compare`: run folders in, records and reports out.

The last stretch of the data flow: checkpoint -> harness -> records -> stats and plots.
An evaluation folder holds records.csv.gz (the data), tasks.json (the task sets),
summary.json (statistics, settings, provenance), report.md (the tables) and
adaptation-curves.png. It is written to a temporary folder and moved into place only
when complete, so a failed evaluation never leaves results that look finished.

Which learners a run offers comes from its algorithm's registry entry ("trained",
"non-adaptive", "finetune", ...), and the references from the registry's reference
learners ("random", "scripted-oracle", "ucb1", "thompson"); nothing here knows an
algorithm.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fewshot import registry
from fewshot.eval import report, stats
from fewshot.eval.harness import EvaluationSettings, evaluate, freeze_tasks
from fewshot.eval.learner import Learner
from fewshot.eval.records import Records
from fewshot.eval.task_sets import load_task_sets, task_sets_from_json
from fewshot.provenance import provenance
from fewshot.run.checkpoint import make_folder, publish_dir
from fewshot.run.config import RunConfig
from fewshot.run.folder import load_trained
from fewshot.run.lock import exclusive
from fewshot.runtime import torch_threads

RECORDS, TASKS, SUMMARY, REPORT, FIGURE = ("records.csv.gz", "tasks.json", "summary.json",
                                           "report.md", "adaptation-curves.png")
OLD_RECORDS = "records.csv"  # evaluations written before records were compressed
DEFAULT_FOLDER = "evaluation"
TASK_RTOL = 1e-9  # task values closer than this (relatively) are the same task


# Runs and learners ----------------------------------------------------------------------

def base_label(run_dir: Path) -> str:
    """The run folder's name without its seed suffix: runs of one learner share it."""
    return re.sub(r"-s\d+$", "", Path(run_dir).resolve().name)


def learner_kinds(config: RunConfig) -> list[str]:
    """The learners a run can be scored as: its algorithm's, then the references."""
    return list(config.algorithm.learners) + registry.reference_names()


def make_learner(kind: str, config: RunConfig, model: Any, *, label: str,
                 options: Mapping[str, Any] | None = None) -> Learner:
    """The learner to score: one the run's algorithm offers, or a reference learner on the
    run's family. `options` go to its factory; one it does not take fails by name."""
    options = dict(options or {})
    algorithm = config.algorithm
    if kind in algorithm.learners:
        factory, args = algorithm.learners[kind], (model, config.algo_config)
    elif kind in registry.reference_names():
        factory, args = registry.reference(kind).make, (config.family_object(),)
    else:
        raise ValueError(f"learner {kind!r} is not one that runs of {config.algo} offer; choose "
                         f"from {learner_kinds(config)}")
    takes = [name for name, p in inspect.signature(factory).parameters.items()
             if p.kind == inspect.Parameter.KEYWORD_ONLY and name != "name"]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ValueError(f"learner {kind} of a {config.algo} run takes no option "
                         f"{', '.join(unknown)}; its options: {takes or 'none'}")
    return factory(*args, name=label, **options)


def default_label(kind: str, config: RunConfig, run_dir: Path) -> str:
    if kind == "trained":
        return base_label(run_dir)
    return f"{base_label(run_dir)}-{kind}" if kind in config.algorithm.learners else kind


# fewshot evaluate -----------------------------------------------------------------------

def evaluate_run(run_dir: Path, settings: EvaluationSettings, *, learner: str = "trained",
                 options: Mapping[str, Any] | None = None,
                 task_sets: Mapping[str, Sequence[Any]] | Path | None = None,
                 label: str | None = None, out: Path | None = None,
                 progress: bool = True) -> Path:
    """Score a run's learner (or a reference learner on its family) on the frozen splits
    in `settings.splits` and on `task_sets` (named lists of tasks or of their parameter
    values, or a JSON file of them);
    returns the evaluation folder."""
    run_dir = Path(run_dir)
    config, model, iteration = load_trained(run_dir)
    family = config.family_object()
    if isinstance(task_sets, Path):
        task_sets = load_task_sets(family, task_sets)
    elif task_sets and any(isinstance(t, Mapping) for ts in task_sets.values() for t in ts):
        task_sets = task_sets_from_json(family, {"sets": dict(task_sets)},
                                        source="task sets")
    if settings.horizon is None and config.horizon is not None:
        settings = replace(settings, horizon=config.horizon)
    label = label or default_label(learner, config, run_dir)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    scored = make_learner(learner, config, model, label=label, options=given)
    sets = dict(freeze_tasks(family, settings))
    clash = sorted(set(sets) & set(task_sets or {}))
    if clash:
        raise ValueError(f"task sets {clash} are named like the frozen splits; rename them "
                         "or leave those splits out of --splits")
    sets.update({name: list(ts) for name, ts in (task_sets or {}).items()})
    out = Path(out) if out is not None else run_dir / (
        DEFAULT_FOLDER if learner == "trained" else f"{DEFAULT_FOLDER}-{learner}")
    check_writable(out)
    total = sum(len(ts) for ts in sets.values()) * settings.trials * (settings.episodes + 1)
    # torch's thread count changes the order of its sums, and chaotic physics amplifies
    # the last bits: evaluate with the run's own setting, whatever the machine's cores
    with tqdm(total=total, desc=f"evaluate {label}", unit="episode",
              disable=not progress) as bar, torch_threads(config.torch_threads):
        records = evaluate(scored, family, sets, settings, run=run_dir.resolve().name,
                           run_seed=config.seed, on_block=bar.update)
    info = {"family": family.name, "family_options": dict(family.options), "learner": label,
            "kind": learner, "run": str(run_dir), "iteration": iteration,
            "settings": asdict(settings),
            "options": given, **provenance()}
    frozen = {"family": family.name, "family_options": dict(family.options),
              "seed": settings.seed,
              "splits": {name: [family.task_to_dict(t) for t in ts]
                         for name, ts in sets.items()}}
    summary = {"info": info, "learners": report.summarize(records)}
    write_folder(out, records=records, summary=summary, frozen=frozen,
                 title=f"{label} on {family.name}")
    return out


def check_writable(out: Path) -> None:
    """Fail now, not after the evaluation, if the output folder cannot be written."""
    out = Path(out)
    make_folder(out.parent, "folder of evaluations")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; an evaluation is a folder")
    os.rmdir(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.probe-"))


def write_folder(out: Path, *, records: Records, summary: dict[str, Any],
                 frozen: dict[str, Any], title: str) -> None:
    """Write every output to a temporary folder, then move it into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (staging / RECORDS).write_bytes(records.to_csv_gz())
        (staging / TASKS).write_text(json.dumps(frozen, indent=2) + "\n")
        (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        table = report.markdown_table(summary["learners"])
        extra = summary.get("probability_of_improvement")
        if extra:
            table += "\n" + report.improvement_table(extra)
        (staging / REPORT).write_text(f"# {title}\n\n{report.how_to_read()}\n\n{table}\n")
        report.plot_curves(summary["learners"], staging / FIGURE, title=title)
        with exclusive(out.parent):  # two evaluations may publish to one --out
            publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# fewshot compare ------------------------------------------------------------------------

def load_evaluation(path: Path) -> tuple[Records, dict[str, Any], dict[str, Any]]:
    """Records, frozen tasks and info of an evaluation folder (or a run's default one)."""
    path = Path(path)
    folder = next((f for f in (path, path / DEFAULT_FOLDER)
                   if (f / RECORDS).is_file() or (f / OLD_RECORDS).is_file()), None)
    if folder is None:
        raise FileNotFoundError(f"{path} holds no evaluation ({RECORDS} not found there or in "
                                f"{DEFAULT_FOLDER}/); run `fewshot evaluate {path}` first")
    records_path = folder / RECORDS if (folder / RECORDS).is_file() else folder / OLD_RECORDS
    try:
        frozen = json.loads((folder / TASKS).read_text())
        info = json.loads((folder / SUMMARY).read_text())["info"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{folder} is not a complete evaluation: {error}") from error
    return Records.read_csv(records_path), frozen, info


def compare(paths: Sequence[Path], out: Path) -> Path:
    """Put several evaluations side by side: one table, one figure, paired statistics.

    Evaluations with the same learner label are pooled as runs of one learner. They are
    compared on the splits all of them were scored on with the same frozen tasks (same
    family, --eval-seed and --tasks); a split whose tasks differ between them (the train
    split of runs trained on different levels) is left out, and named in the summary's
    info as "splits_left_out". With no such split in common, compare refuses.
    """
    if len(paths) < 2:
        raise ValueError(f"compare needs at least two evaluations, got {len(paths)}")
    loaded = [load_evaluation(Path(p)) for p in paths]
    check_writable(out)
    first_path, (_, first_tasks, _) = paths[0], loaded[0]
    shared = list(first_tasks["splits"])
    for path, (_, frozen, _) in zip(paths[1:], loaded[1:], strict=True):
        shared = [s for s in shared_splits(first_tasks, frozen) if s in shared]
        if not shared:
            raise ValueError(f"{path} and {first_path} were evaluated on different tasks "
                             f"({frozen['family']} seed {frozen['seed']} against "
                             f"{first_tasks['family']} seed {first_tasks['seed']}), or share "
                             "none with the others; evaluate all with the same --eval-seed "
                             "and --tasks")
    left_out = sorted({s for _, frozen, _ in loaded for s in frozen["splits"]} - set(shared))
    loaded = [(records.where_in("split", shared), frozen, info)
              for records, frozen, info in loaded]
    first_tasks = {**first_tasks, "splits": {s: first_tasks["splits"][s] for s in shared}}
    records = loaded[0][0]
    for extra, _, _ in loaded[1:]:
        records = records.concat(extra)
    pairs = [set(zip(recs["learner"], recs["run"], strict=True)) for recs, _, _ in loaded]
    twice = sorted(key for key in set().union(*pairs) if sum(key in p for p in pairs) > 1)
    if twice:
        raise ValueError(f"the same learner and run appear in several evaluations: {twice}; "
                         "give one of them another --label")
    summary = {"info": {"evaluations": [str(p) for p in paths],
                        **({"splits_left_out": left_out} if left_out else {}), **provenance()},
               "learners": report.summarize(records),
               "probability_of_improvement": improvements(records)}
    write_folder(Path(out), records=records, summary=summary, frozen=first_tasks,
                 title=f"{first_tasks['family']}: " + " vs ".join(records.unique("learner")))
    return Path(out)


def shared_splits(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The splits two frozen task sets hold with the same tasks."""
    if first["family"] != other["family"]:
        return []
    return [s for s in first["splits"]
            if s in other["splits"] and same_values(other["splits"][s], first["splits"][s])]


def same_values(a: Any, b: Any) -> bool:
    """Equal, floats to TASK_RTOL: tasks frozen on machines whose exp differs in the last
    bit (as numpy's did with and without AVX-512) are the same tasks."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=TASK_RTOL))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    return a == b


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
