"""`fewshot sweep`: run a SPEC's trials on Ray Tune, then compare them.

With no address, Ray starts inside the command with the machine's cores and stops with
it; `address` joins a running cluster. Each trial runs `fewshot.sweep.trial.run_trial`
in a Ray worker with `cpus_per_trial` CPUs, in its own run folder under OUT/runs/.
Resuming re-runs the same trials: finished ones only report again, interrupted ones
continue from their checkpoints (the run folders resume exactly), so no Tune state is
needed to resume. At the end, OUT/comparison[-FAMILY] compares the trials' evaluations,
one learner per group of grid values with the seeds as runs, and OUT/sweep.json lists
every trial with its status and error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from fewshot.checks import MissingExtraError
from fewshot.eval.evaluation import compare
from fewshot.provenance import cpus, provenance
from fewshot.run.checkpoint import atomic_write_text, make_folder
from fewshot.run.lock import LOCK, RunLock
from fewshot.sweep.spec import DISTRIBUTIONS, Spec, Trial, load_spec
from fewshot.sweep.trial import evaluated, evaluation_folder, run_trial, searched_trial, trial_meta

SPEC_COPY = "spec.yaml"
SUMMARY = "sweep.json"
EXTRA = "pip install 'fewshot[sweep]'"


def import_ray() -> Any:
    """Ray, or an error saying which extra installs it."""
    try:
        import ray
        from ray import tune  # noqa: F401 - its import checks ray[tune]'s dependencies
    except ImportError as error:
        raise MissingExtraError(f"fewshot sweep needs Ray Tune, which is not installed "
                                f"({error}); install the sweep extra: {EXTRA}") from error
    return ray


def run_sweep(spec_path: Path, out: Path, *, address: str | None = None,
              resume: bool = False, progress: bool = True,
              imports: list[str] = ()) -> dict[str, Any]:
    """Run (or resume) the sweep; returns its summary (also written to OUT/sweep.json).
    `imports`: plugin modules every trial imports (recorded in each run's config)."""
    spec = load_spec(spec_path, imports=imports)
    import_ray()  # before any file is written: a missing extra is named first
    out = make_folder(out, "sweep folder")
    with RunLock(out, "sweep folder"):  # one driver per sweep
        return run_locked(spec, out, address=address, resume=resume, progress=progress)


def run_locked(spec: Spec, out: Path, *, address: str | None, resume: bool,
               progress: bool) -> dict[str, Any]:
    ray = import_ray()
    prepare(out, spec, resume=resume)
    common = {"runs": str((out / "runs").resolve()), "learners": spec.learners,
              "tune_metrics": {f"{key}.metric": section["metric"] for key, section in
                               (("stop_early", spec.stop_early), ("search", spec.search))
                               if section is not None},
              "settings": {**spec.settings.__dict__, "splits": list(spec.settings.splits)},
              "task_sets": spec.task_sets,
              "base": spec.base, "seed": spec.seeds[0], "cpus": spec.cpus_per_trial,
              "sweep_command": [sys.executable, *sys.argv]}
    started_here = not ray.is_initialized()
    # --no-progress: Ray's and Tune's banners and tables are not shown (errors still are)
    quiet = contextlib.ExitStack()
    if not progress:
        quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with quiet:
        if started_here:
            ray.init(address=address, num_cpus=None if address else cpus(),
                     include_dashboard=False, configure_logging=False,
                     log_to_driver=progress,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                         p for p in sys.path if p and Path(p).is_dir())}})
        try:
            results = run_trials(spec, common, out, resume=resume, progress=progress)
        finally:
            if started_here:
                ray.shutdown()
    # a search may choose one setting twice: it is one trial (one run folder)
    trials = spec.trials or list({t.name: t for t in (
        searched_trial(common, r.config["values"]) for r in results)}.values())
    errors = {trial.name: _error_line(result.error) for trial, result
              in zip(trials, results_by_trial(trials, results), strict=True)
              if result is not None and result.error is not None}
    summary = summarize(spec, [(t, trial_meta(t, common)) for t in trials], errors, out)
    if spec.search is not None:
        summary["search"] = {**spec.search, "best": best_trial(spec, trials, results)}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def prepare(out: Path, spec: Spec, *, resume: bool) -> None:
    """A new sweep needs an empty folder; a resumed one the same SPEC, except that a grid
    may change its evaluate block (its trials are scored again, not trained again) and
    raise base.iterations (its trials train on from their checkpoints, then are scored
    again)."""
    saved = out / SPEC_COPY
    if resume:
        if not saved.is_file():
            raise FileNotFoundError(f"--resume: {out} holds no sweep (no {SPEC_COPY})")
        started = yaml.safe_load(saved.read_text())
        if started == spec.source:
            return
        changes = resumable_changes(started, spec.source)
        if spec.search is None and changes is not None:
            print(f"{out}: resumed with {' and '.join(changes)}; its trials are "
                  "trained on and scored again as the new SPEC asks", file=sys.stderr)
            atomic_write_text(saved, yaml.safe_dump(spec.source, sort_keys=False))
            return
        raise ValueError(f"--resume: the SPEC differs from the one {out} was started "
                         f"with ({saved}); resume with that one (a grid may change its "
                         "evaluate block and raise base.iterations), or choose another "
                         "--out")
    if any(p.name != LOCK for p in out.iterdir()):
        raise FileExistsError(f"sweep folder {out} is not empty; pass --resume to continue "
                              "its sweep, or choose another --out")
    atomic_write_text(saved, yaml.safe_dump(spec.source, sort_keys=False))


def resumable_changes(started: dict[str, Any], now: dict[str, Any]) -> list[str] | None:
    """What differs between two SPECs, if a resume may take it: the evaluate block, and
    more base.iterations; None for any other difference."""
    def rest(source: dict[str, Any]) -> dict[str, Any]:
        base = {k: v for k, v in (source.get("base") or {}).items() if k != "iterations"}
        return {**{k: v for k, v in source.items() if k != "evaluate"}, "base": base}

    if rest(started) != rest(now):
        return None
    before = (started.get("base") or {}).get("iterations")
    after = (now.get("base") or {}).get("iterations")
    if before != after and not (isinstance(before, int) and isinstance(after, int)
                                and after > before):
        return None
    return ([f"base.iterations {before} -> {after}"] if before != after else []) + (
        ["another evaluate block"] if started.get("evaluate") != now.get("evaluate") else [])


def run_trials(spec: Spec, common: dict[str, Any], out: Path, *, resume: bool,
               progress: bool) -> Any:
    """Every trial through Tune; returns Tune's results (a ResultGrid). A search resumes
    Tune's own state (the searcher's history) when there is one to resume."""
    from ray import tune

    trainable = tune.with_resources(run_trial, {"cpu": spec.cpus_per_trial})
    attempts = sorted((out / ".tune").glob("attempt-*"), key=lambda p: int(p.name[8:]))
    if spec.search is not None and resume and attempts and tune.Tuner.can_restore(
            attempts[-1]):
        return tune.Tuner.restore(str(attempts[-1]), trainable,
                                  resume_unfinished=True).fit()
    if spec.search is None:
        param_space = {"trial": tune.grid_search([trial_meta(t, common)
                                                   for t in spec.trials])}
        name_of = lambda t: t.config["trial"]["name"]  # noqa: E731
    else:
        param_space = {"common": common, "values": {
            name: search_domain(tune, kind, args) for name, (kind, args)
            in spec.sample.items()}}
        name_of = lambda t: searched_trial(t.config["common"], t.config["values"]).name  # noqa: E731
    tuner = tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(scheduler=scheduler(spec),
                                    search_alg=searcher(spec),
                                    num_samples=spec.num_samples if spec.search else 1,
                                    trial_name_creator=name_of,
                                    trial_dirname_creator=name_of),
        run_config=tune.RunConfig(storage_path=str((out / ".tune").resolve()),
                                  name=f"attempt-{len(attempts)}",
                                  verbose=1 if progress else 0,
                                  failure_config=tune.FailureConfig(max_failures=0)))
    return tuner.fit()


def scheduler(spec: Spec) -> Any:
    """ASHA over the SPEC's stop_early metric, or None."""
    if spec.stop_early is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    iterations = ([t.config["iterations"] for t in spec.trials] or
                  [spec.base.get("iterations", 1)])
    return ASHAScheduler(time_attr="iteration", metric=spec.stop_early["metric"],
                         mode=spec.stop_early["mode"],
                         grace_period=spec.stop_early["grace_period"],
                         reduction_factor=spec.stop_early["reduction_factor"],
                         max_t=max(iterations))


def searcher(spec: Spec) -> Any:
    """Optuna (through Tune) over the SPEC's search metric, or None."""
    if spec.search is None:
        return None
    try:
        import optuna  # noqa: F401
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as error:
        raise MissingExtraError(f"search.algorithm optuna needs Optuna, which is not "
                                f"installed ({error}); install the sweep extra: {EXTRA}"
                                ) from error
    return OptunaSearch(metric=spec.search["metric"], mode=spec.search["mode"],
                        seed=spec.search["seed"])


def search_domain(tune: Any, kind: str, args: list) -> Any:
    """A SPEC distribution as Tune's: the same bounds a sampled grid draws from."""
    assert kind == "choice" or kind in DISTRIBUTIONS
    return tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)


def results_by_trial(trials: list[Trial], results: Any) -> list[Any]:
    """Tune's result of each trial (None if Tune has none), in the order of `trials`."""
    by_name = {Path(result.path).name: result for result in results if result.path}
    return [by_name.get(trial.name) for trial in trials]


def best_trial(spec: Spec, trials: list[Trial], results: Any) -> dict[str, Any] | None:
    """The search's best trial by the last value of its metric."""
    metric, sign = spec.search["metric"], 1 if spec.search["mode"] == "max" else -1
    scored = [(result.metrics[metric], trial) for trial, result
              in zip(trials, results_by_trial(trials, results), strict=True)
              if result is not None and result.metrics and metric in result.metrics]
    if not scored:
        return None
    value, trial = max(scored, key=lambda pair: sign * pair[0])
    return {"name": trial.name, "values": trial.values, metric: value}


def summarize(spec: Spec, trials: list[tuple[Trial, dict]], errors: dict[str, str],
              out: Path) -> dict[str, Any]:
    """sweep.json: each trial's status, and the comparisons of the evaluated ones."""
    rows, by_family = [], defaultdict(list)
    for trial, meta in trials:
        run_dir = Path(meta["run_dir"])
        folders = [evaluation_folder(run_dir, k) for k in meta["learners"]]
        scored = all(evaluated(meta, k) for k in meta["learners"])
        status = "failed" if trial.name in errors else "evaluated" if scored else (
            "stopped early" if spec.stop_early else "incomplete")
        rows.append({"name": trial.name, "group": trial.group, "values": trial.values,
                     "seed": trial.seed, "run_dir": meta["run_dir"], "status": status,
                     "error": errors.get(trial.name)})
        if scored:
            by_family[trial.config["family"]].extend(folders)
    comparisons = {}
    for family, folders in by_family.items():
        target = out / ("comparison" if len(by_family) == 1 else f"comparison-{family}")
        if len(folders) >= 2:
            compare(folders, target)
            comparisons[family] = str(target)
    counts = defaultdict(int)
    for row in rows:
        counts[row["status"]] += 1
    return {"trials": rows, "counts": dict(counts), "comparisons": comparisons,
            **provenance()}


def _error_line(error: BaseException) -> str:
    """The trial's own error, not Ray's wrapper: its last line."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
