"""fewshot sweep: SPEC checks before anything starts, a 4-trial sweep on local Ray with 2
CPUs, a killed driver resumed to the same checkpoints, a failing trial that fails alone,
and a plugin's family and algorithm in a sweep."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fewshot import cli
from fewshot.run.checkpoint import load_checkpoint, named_tensors
from fewshot.sweep.spec import SpecError, parse_spec

PLUGINS = Path(__file__).parent / "plugins"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"
# the example of docs/sweeps.md, as written there
SPEC = yaml.safe_load(re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.S).group(1))
BASE = SPEC["base"]
# Optuna chooses 3 inner step sizes (one seed each) by the last post-adaptation return
SEARCH = {**SPEC, "grid": {}, "seeds": [0], "num_samples": 3,
          "sample": {"maml.inner_lr": {"loguniform": [0.01, 0.5]}},
          "search": {"algorithm": "optuna", "metric": "return_step1", "mode": "max"}}


def write_spec(folder, spec):
    path = Path(folder) / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def weights(run_dir):
    return dict(named_tensors(load_checkpoint(run_dir)["learner"]))


def kill_after_a_checkpoint(spec, folder, out):
    """Start the sweep in a driver process and kill it (SIGKILL: the driver and the Ray
    processes it started) once a trial has written a checkpoint."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "fewshot.cli", "sweep", str(write_spec(folder, spec)),
         "--out", str(out), "--no-progress"], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The 4-trial sweep, uninterrupted."""
    folder = tmp_path_factory.mktemp("sweep")
    out = folder / "out"
    assert cli.main(["sweep", str(write_spec(folder, SPEC)), "--out", str(out),
                     "--no-progress"]) == 0
    return out


@pytest.mark.parametrize(("change", "message"), [
    ({"grids": {}}, r"unknown fields \['grids'\]"),
    ({"grid": {"maml.inner_lr": []}}, "field grid.maml.inner_lr must be a non-empty list"),
    ({"grid": {"maml.inner_lr": ["fast"]}}, r"trial maml-point-nav_inner_lr=fast-s0: config "
                                            r"field maml.inner_lr must be a number"),
    ({"grid": {"maml.no_such": [1]}}, r"unknown settings \['maml.no_such'\]"),
    ({"seeds": [0, 0]}, "field seeds must be a non-empty list of distinct integers >= 0"),
    ({"seeds": [-1]}, "field seeds must be"),
    ({"evaluate": {"learner": ["trained"]}}, r"unknown fields \['evaluate.learner'\]"),
    ({"evaluate": {"learners": ["finetune"]}}, r"evaluate.learners \['finetune'\] do not "
                                               "apply"),
    ({"evaluate": {"episodes": -1}}, "evaluation setting episodes must be"),
    ({"sample": {"maml.max_kl": {"loguniform": [0, 1]}}}, "sample.maml.max_kl.loguniform"),
    ({"sample": {"maml.max_kl": {"normal": [0, 1]}}}, "field sample.maml.max_kl must be one"),
    ({"cpus_per_trial": 0}, "field cpus_per_trial must be an integer >= 1"),
    ({"stop_early": {"metric": "return_step1", "mode": "up"}}, "stop_early.mode must be"),
    ({"search": {"metric": "return_step1"}}, "field sample must be the distributions"),
    ({**SEARCH, "search": {"mode": "max"}}, "field search must be a mapping with a metric"),
    ({**SEARCH, "search": {"metric": "m", "algorithm": "hyperopt"}},
     r"search.algorithm must be one of \['optuna'\]"),
    ({**SEARCH, "search": {"metric": "m", "mode": "up"}}, "search.mode must be max or min"),
    ({**SEARCH, "search": {"metric": "m", "seeds": 1}}, r"unknown fields \['search.seeds'\]"),
    ({**SEARCH, "grid": {"maml.inner_lr": [0.1]}}, "field grid must be empty when search"),
    ({**SEARCH, "seeds": [0, 1]}, "field seeds must be one seed when search is given"),
    ({**SEARCH, "sample": {"maml.hidden_sizes": {"choice": [[8], [16]]}}},
     "sample.maml.hidden_sizes.choice must be numbers, strings, booleans or null"),
    ({**SEARCH, "sample": {"maml.inner_lr": {"uniform": [-1, 0.5]}}},  # a bound, checked
     "config field maml.inner_lr must be > 0, got -1"),
    ({"evaluate": {"task_sets": {"near": []}}}, "field evaluate.task_sets must be a mapping "
                                                "of set names to non-empty lists"),
    ({"evaluate": {"task_sets": {"test-id": [{"goal_x": 0.1, "goal_y": 0.0}]}}},
     r"evaluate.task_sets \['test-id'\] are named like splits in evaluate.splits"),
    ({"evaluate": {"splits": [], "task_sets": {"near": [{"goal_x": 7.0, "goal_y": 0.0}]}}},
     "set 'near', task 0: task parameter 'goal_x' must be in"),
])
def test_a_bad_spec_fails_before_anything_starts_naming_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, **change}, base_dir=Path("."))


def test_the_spec_expands_to_trials_with_their_threads_and_samples():
    spec = parse_spec({**SPEC, "sample": {"maml.max_kl": {"loguniform": [0.001, 0.1]}},
                       "num_samples": 2, "cpus_per_trial": 2}, base_dir=Path("."))
    assert len(spec.trials) == 2 * 2 * 2  # grid values x samples x seeds
    kls = [t.config["maml"]["max_kl"] for t in spec.trials]
    assert len(set(kls)) == 4 and all(0.001 <= kl < 0.1 for kl in kls)
    assert all(t.config["update_threads"] == 2 and t.config["nthread"] is None
               for t in spec.trials)  # point-nav has no MuJoCo threads to set
    again = parse_spec({**SPEC, "sample": {"maml.max_kl": {"loguniform": [0.001, 0.1]}},
                        "num_samples": 2, "cpus_per_trial": 2}, base_dir=Path("."))
    assert [t.config for t in again.trials] == [t.config for t in spec.trials]
    cheetah = parse_spec({**SPEC, "base": {**BASE, "family": "cheetah-vel"}},
                         base_dir=Path("."))
    assert all(t.config["nthread"] == 1 for t in cheetah.trials)


def test_a_sweep_over_algorithms_keeps_each_trials_own_section_and_learners():
    base = {**BASE, "ppo": {"meta_batch_size": 2, "episodes_per_task": 2}}
    spec = parse_spec({**SPEC, "base": base, "grid": {"algo": ["maml", "ppo"]},
                       "evaluate": {"learners": {"ppo": ["trained", "finetune"]}}},
                      base_dir=Path("."))
    sections = {t.name: [k for k in ("maml", "ppo") if k in t.config] for t in spec.trials}
    assert sections == {"maml-point-nav-s0": ["maml"], "maml-point-nav-s1": ["maml"],
                        "ppo-point-nav-s0": ["ppo"], "ppo-point-nav-s1": ["ppo"]}
    assert spec.trials[2].config["ppo"]["meta_batch_size"] == 2
    with pytest.raises(SpecError, match=r"evaluate.learners \['finetune'\] do not apply to "
                                        r"trial maml-point-nav-s0"):
        parse_spec({**SPEC, "base": base, "grid": {"algo": ["maml", "ppo"]},
                    "evaluate": {"learners": {"maml": ["finetune"]}}}, base_dir=Path("."))


def test_a_sweep_trains_evaluates_and_compares_every_trial(sweep):
    summary = json.loads((sweep / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 4}
    for trial in summary["trials"]:
        run = Path(trial["run_dir"])
        assert load_checkpoint(run)["iteration"] == 3
        assert (run / "evaluation" / "records.csv.gz").is_file()
    report = json.loads((sweep / "comparison" / "summary.json").read_text())
    assert sorted(report["learners"]) == ["maml-point-nav inner_lr=0.05",
                                          "maml-point-nav inner_lr=0.1"]
    assert all(len(entry["runs"]) == 2 for entry in report["learners"].values())  # 2 seeds


def test_a_sweep_scores_its_trials_on_the_task_sets_of_its_spec(tmp_path):
    near = [{"goal_x": 0.1, "goal_y": 0.0}, {"goal_x": 0.0, "goal_y": -0.2}]
    spec = {**SPEC, "grid": {}, "seeds": [0],
            "evaluate": {"splits": ["test-ood"], "episodes": 1, "tasks": 1, "trials": 1,
                         "task_sets": {"near": near}}}
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, spec)), "--out", str(out),
                     "--no-progress"]) == 0
    frozen = json.loads((out / "runs" / "maml-point-nav-s0" / "evaluation" /
                         "tasks.json").read_text())
    assert frozen["splits"]["near"] == near
    assert sorted(frozen["splits"]) == ["near", "test-ood"]


def test_each_run_remembers_the_sweep_and_trial_that_started_it(sweep):
    for run in (sweep / "runs").iterdir():
        started_by = json.loads((run / "manifest.json").read_text())["started_by"]
        assert started_by["trial"] == run.name
        assert started_by["sweep_command"][0] == sys.executable


def test_a_scored_trial_is_done_even_without_its_checkpoint(sweep, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(sweep, out, ignore=shutil.ignore_patterns(".tune", ".lock"))
    run = sorted((out / "runs").iterdir())[0]
    (run / "checkpoint.pt").unlink()  # as where a replay buffer is too large to keep
    rows = (run / "metrics.csv").read_text()
    assert cli.main(["sweep", str(out / "spec.yaml"), "--out", str(out), "--resume",
                     "--no-progress"]) == 0
    assert not (run / "checkpoint.pt").exists() and (run / "metrics.csv").read_text() == rows
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 4}


def test_a_sweep_resumed_with_another_evaluate_block_scores_again_without_training(
        sweep, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(sweep, out, ignore=shutil.ignore_patterns(".tune", ".lock"))
    runs = sorted((out / "runs").iterdir())
    before = {run: (run / "metrics.csv").read_text() for run in runs}
    more = {**SPEC, "evaluate": {**SPEC["evaluate"], "tasks": 3}}
    assert cli.main(["sweep", str(write_spec(tmp_path, more)), "--out", str(out),
                     "--resume", "--no-progress"]) == 0
    assert "resumed with another evaluate block" in capsys.readouterr().err
    assert yaml.safe_load((out / "spec.yaml").read_text()) == more
    for run in runs:
        assert (run / "metrics.csv").read_text() == before[run]  # not trained again
        assert load_checkpoint(run)["iteration"] == 3
        frozen = json.loads((run / "evaluation" / "tasks.json").read_text())
        assert all(len(tasks) == 3 for tasks in frozen["splits"].values())
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 4}
    compared = json.loads((out / "comparison" / "tasks.json").read_text())
    assert all(len(tasks) == 3 for tasks in compared["splits"].values())


def test_a_sweep_resumed_with_more_iterations_trains_on_and_scores_again(
        sweep, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(sweep, out, ignore=shutil.ignore_patterns(".tune", ".lock"))
    runs = sorted((out / "runs").iterdir())
    rows = {run: (run / "metrics.csv").read_text().splitlines() for run in runs}
    legacy = runs[0] / "evaluation" / "summary.json"  # as written before info.iteration
    summary = json.loads(legacy.read_text())
    del summary["info"]["iteration"]
    legacy.write_text(json.dumps(summary))
    longer = {**SPEC, "base": {**BASE, "iterations": BASE["iterations"] + 1}}
    assert cli.main(["sweep", str(write_spec(tmp_path, longer)), "--out", str(out),
                     "--resume", "--no-progress"]) == 0
    assert f"base.iterations {BASE['iterations']} -> {BASE['iterations'] + 1}" in \
        capsys.readouterr().err
    for run in runs:
        assert load_checkpoint(run)["iteration"] == BASE["iterations"] + 1
        now = (run / "metrics.csv").read_text().splitlines()
        assert now[:len(rows[run])] == rows[run] and len(now) == len(rows[run]) + 1
        info = json.loads((run / "evaluation" / "summary.json").read_text())["info"]
        assert info["iteration"] == BASE["iterations"] + 1  # scored again, at the end
    assert json.loads((out / "sweep.json").read_text())["counts"] == {"evaluated": 4}
    fewer = {**SPEC, "base": {**BASE, "iterations": 1}}
    with pytest.raises(SystemExit, match=r"raise base\.iterations"):
        cli.main(["sweep", str(write_spec(tmp_path, fewer)), "--out", str(out), "--resume"])


def test_a_search_resumed_with_another_evaluate_block_is_refused(tmp_path):
    from fewshot.sweep.driver import prepare

    out = tmp_path / "out"
    out.mkdir()
    prepare(out, parse_spec(SEARCH, base_dir=tmp_path), resume=False)
    changed = {**SEARCH, "evaluate": {**SEARCH["evaluate"], "tasks": 3}}
    with pytest.raises(ValueError, match="a grid may change its evaluate block"):
        prepare(out, parse_spec(changed, base_dir=tmp_path), resume=True)


def test_a_killed_sweep_resumes_to_the_same_checkpoints(sweep, tmp_path):
    out = tmp_path / "out"
    kill_after_a_checkpoint(SPEC, tmp_path, out)
    assert cli.main(["sweep", str(tmp_path / "spec.yaml"), "--out", str(out), "--resume",
                     "--no-progress"]) == 0
    for run in sorted((sweep / "runs").iterdir()):
        a, b = weights(run), weights(out / "runs" / run.name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_trial_with_a_bad_value_fails_alone(tmp_path, capsys):
    spec = {**SPEC, "grid": {"maml.hidden_sizes": [[8], [20000000]]}, "seeds": [0]}
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, spec)), "--out", str(out),
                     "--no-progress"]) == 1
    summary = json.loads((out / "sweep.json").read_text())
    status = {t["name"]: (t["status"], t["error"]) for t in summary["trials"]}
    assert status["maml-point-nav_hidden_sizes=8-s0"] == ("evaluated", None)
    failed, error = status["maml-point-nav_hidden_sizes=20000000-s0"]
    assert failed == "failed" and "needs about" in error and "of memory" in error
    printed = capsys.readouterr().out
    assert "2 trials: 1 evaluated, 1 failed" in printed
    assert ("maml-point-nav_hidden_sizes=20000000-s0: tasks.resources.TooLargeError: "
            "2 batches of 4 simulations") in printed


def test_a_plugin_family_and_algorithm_run_in_a_sweep(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    spec = {"base": {"algo": "reinforce", "family": "line-nav", "iterations": 2},
            "grid": {"family_options.train_goals": [0, 4]}, "seeds": [0],
            "evaluate": {"episodes": 1, "tasks": 2, "trials": 1}}
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, spec)), "--out", str(out),
                     "--import", "reinforce_plugin", "--no-progress"]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 2}
    run = Path(summary["trials"][0]["run_dir"])  # the run remembers the import
    assert yaml.safe_load((run / "config.yaml").read_text())["imports"] == ["reinforce_plugin"]


def test_resuming_needs_the_same_spec_and_a_new_sweep_an_empty_folder(sweep, tmp_path):
    with pytest.raises(SystemExit, match="not empty; pass --resume"):
        cli.main(["sweep", str(write_spec(tmp_path, SPEC)), "--out", str(sweep)])
    with pytest.raises(SystemExit, match="the SPEC differs"):
        cli.main(["sweep", str(write_spec(tmp_path, {**SPEC, "seeds": [5]})), "--out",
                  str(sweep), "--resume"])


def test_early_stopping_stops_the_worst_trials_and_says_so(tmp_path):
    spec = {**SPEC, "base": {**BASE, "iterations": 6},
            "grid": {"maml.inner_lr": [0.001, 0.01, 0.1, 0.5]}, "seeds": [0],
            "stop_early": {"metric": "return_step1", "mode": "max", "grace_period": 1,
                           "reduction_factor": 2}}
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, spec)), "--out", str(out),
                     "--no-progress"]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    stopped = [t for t in summary["trials"] if t["status"] == "stopped early"]
    assert stopped and summary["counts"].get("evaluated", 0) >= 1
    for trial in stopped:  # an ordinary run folder, stopped at a checkpoint
        assert 1 <= load_checkpoint(Path(trial["run_dir"]))["iteration"] < 6


def test_a_search_trains_the_settings_optuna_chooses_and_names_the_best(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, SEARCH)), "--out", str(out),
                     "--no-progress"]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 3}
    last = {}
    for trial in summary["trials"]:
        run = Path(trial["run_dir"])
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["maml"]["inner_lr"] == trial["values"]["maml.inner_lr"]
        assert 0.01 <= trial["values"]["maml.inner_lr"] <= 0.5
        assert load_checkpoint(run)["iteration"] == 3
        assert (run / "evaluation" / "records.csv.gz").is_file()
        with open(run / "metrics.csv") as rows:
            last[trial["name"]] = float(list(csv.DictReader(rows))[-1]["return_step1"])
    assert len({t["values"]["maml.inner_lr"] for t in summary["trials"]}) == 3
    best = summary["search"]["best"]
    assert best["name"] == max(last, key=last.get)
    assert best["return_step1"] == pytest.approx(max(last.values()))
    assert f"best by return_step1: {best['name']}" in capsys.readouterr().out
    report = json.loads((out / "comparison" / "summary.json").read_text())
    assert len(report["learners"]) == 3  # one learner per setting chosen
    # resumed when finished: Tune's state (the searcher's) is restored, nothing retrains
    stamps = {t["name"]: os.stat(Path(t["run_dir"]) / "checkpoint.pt").st_mtime_ns
              for t in summary["trials"]}
    assert cli.main(["sweep", str(tmp_path / "spec.yaml"), "--out", str(out), "--resume",
                     "--no-progress"]) == 0
    again = json.loads((out / "sweep.json").read_text())
    assert again["counts"] == {"evaluated": 3} and again["search"]["best"] == best
    assert stamps == {t["name"]: os.stat(Path(t["run_dir"]) / "checkpoint.pt").st_mtime_ns
                      for t in again["trials"]}


def test_a_killed_search_resumes_its_trials_and_chooses_no_more_than_asked(tmp_path):
    out = tmp_path / "out"
    kill_after_a_checkpoint(SEARCH, tmp_path, out)
    started = {run.name for run in (out / "runs").iterdir()}
    assert cli.main(["sweep", str(tmp_path / "spec.yaml"), "--out", str(out), "--resume",
                     "--no-progress"]) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"evaluated": 3}
    names = {t["name"] for t in summary["trials"]}
    # the trials started before the kill are among the three, and no folder is left over
    assert started <= names == {run.name for run in (out / "runs").iterdir()}
    for trial in summary["trials"]:
        assert load_checkpoint(Path(trial["run_dir"]))["iteration"] == 3


def test_a_search_metric_the_runs_do_not_report_fails_naming_it(tmp_path, capsys):
    spec = {**SEARCH, "num_samples": 1, "search": {"metric": "no_such_metric"}}
    out = tmp_path / "out"
    assert cli.main(["sweep", str(write_spec(tmp_path, spec)), "--out", str(out),
                     "--no-progress"]) == 1
    (trial,) = json.loads((out / "sweep.json").read_text())["trials"]
    assert trial["status"] == "failed"
    assert "search.metric 'no_such_metric' is not a metric of this run" in trial["error"]


def test_without_ray_the_command_names_the_extra_to_install(tmp_path):
    blocked = ("import sys; sys.modules['ray'] = None\n"
               "from fewshot import cli; sys.exit(cli.main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", blocked, "sweep",
                             str(write_spec(tmp_path, SPEC)), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "install the sweep extra: pip install 'fewshot[sweep]'" in result.stderr


def test_a_second_driver_on_one_sweep_is_refused_naming_the_first(sweep):
    from fewshot.run.lock import RunLock

    with RunLock(sweep), pytest.raises(SystemExit, match=rf"sweep folder {sweep} is in use "
                                                         rf"by pid {os.getpid()}"):
        cli.main(["sweep", str(sweep / "spec.yaml"), "--out", str(sweep), "--resume"])


def test_the_search_example_of_the_docs_is_a_valid_spec():
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    (example,) = [yaml.safe_load(b) for b in blocks if "search:" in b]
    spec = parse_spec(example, base_dir=Path("."))
    assert spec.search["metric"] == "return_step1" and spec.num_samples == 12


def test_the_benchmark_specs_are_valid():
    from fewshot.sweep.spec import load_spec

    specs = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.yaml"))
    assert specs
    for path in specs:
        spec = load_spec(path)
        assert spec.trials
