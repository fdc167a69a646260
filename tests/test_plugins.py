"""Plugins: a family and an algorithm from a user's module (tests/plugins/reinforce_plugin.py)
reach every command and every process, by --import, by the run's own record of it, or by
an installed entry point; and bad input at these boundaries fails naming the problem."""

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tasks
from fewshot import cli, plugins, registry
from fewshot.eval.task_sets import task_sets_from_json
from fewshot.run.checkpoint import load_checkpoint

PLUGINS = Path(__file__).resolve().parent / "plugins"
TRAIN = ["train", "--import", "reinforce_plugin", "--algo", "reinforce", "--family",
         "line-nav", "--reinforce.tasks_per_iteration", "3", "--reinforce.episodes_per_task",
         "2", "--checkpoint_every", "2", "--no-progress"]


def fewshot(*args: str, pythonpath: list[Path] = (), check: bool = True):
    """`fewshot ARGS` in a fresh process, with only `pythonpath` added to the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    done = subprocess.run([sys.executable, "-m", "fewshot.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def plugin_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    plugins.import_plugin("reinforce_plugin")


def test_a_plugin_trains_resumes_exactly_and_evaluates_in_fresh_processes(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "reinforce-line-nav-s0"
    fewshot(*TRAIN, "--iterations", "4", "--out", str(whole), pythonpath=[PLUGINS])
    fewshot(*TRAIN, "--iterations", "2", "--out", str(split), pythonpath=[PLUGINS])
    # the run recorded its import: resuming needs neither --import nor the other flags
    fewshot("train", "--out", str(split), "--resume", "--iterations", "4", "--no-progress",
            pythonpath=[PLUGINS])
    a, b = load_checkpoint(whole), load_checkpoint(split)
    assert a["env_steps"] == b["env_steps"] > 0
    for name, tensor in a["learner"]["policy"].items():
        assert torch.equal(tensor, b["learner"]["policy"][name]), name
    config = (split / "config.yaml").read_text()
    assert "imports:\n- reinforce_plugin" in config and "reinforce:" in config
    done = fewshot("evaluate", str(split), "--episodes", "1", "--tasks", "3", "--trials", "2",
                   "--no-progress", pythonpath=[PLUGINS])
    assert "### reinforce-line-nav" in done.stdout and "Rate of `success`" in done.stdout
    summary = json.loads((split / "evaluation" / "summary.json").read_text())
    assert summary["info"]["family"] == "line-nav"


def test_without_its_module_on_the_path_a_plugin_run_fails_naming_the_module(tmp_path):
    run = tmp_path / "run"
    fewshot(*TRAIN, "--iterations", "1", "--out", str(run), pythonpath=[PLUGINS])
    done = fewshot("evaluate", str(run), "--no-progress", check=False)
    assert done.returncode != 0
    assert "plugin module 'reinforce_plugin' not found" in done.stderr


def unpickle_and_describe(data: bytes) -> tuple[str, dict, dict]:
    task = pickle.loads(data)
    family = tasks.get("line-nav", train_goals=3)
    return family.describe(task), family.task_to_dict(task), dict(family.options)


def test_tasks_of_a_plugin_family_cross_a_spawned_process(plugin_on_path):
    family = tasks.get("line-nav", train_goals=3)
    task = family.sample(1, "train", __import__("numpy").random.default_rng(0))[0]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        described, values, options = pool.apply(unpickle_and_describe, (pickle.dumps(task),))
    assert described == family.describe(task)
    assert values == family.task_to_dict(task) and options == {"train_goals": 3}


def test_family_options_make_distinct_families_and_are_checked(plugin_on_path):
    finite = tasks.get("line-nav", train_goals=3)
    assert finite is tasks.get("line-nav", train_goals=3)
    assert finite is not tasks.get("line-nav")
    assert len({t.goal for t in finite.sample(50, "train",
                                               __import__("numpy").random.default_rng(0))}) == 3
    with pytest.raises(ValueError, match="option train_goals must be an integer, got '3'"):
        tasks.get("line-nav", train_goals="3")
    with pytest.raises(ValueError, match=r"has no options \['goals'\]; its options: "
                                         r"\['train_goals'\]"):
        tasks.get("line-nav", goals=3)
    with pytest.raises(ValueError, match="option train_goals must be >= 0"):
        tasks.get("line-nav", train_goals=-1)


def test_entry_point_plugins_load_by_themselves(tmp_path):
    dist = tmp_path / "line_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: line-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fewshot.plugins]\nline = reinforce_plugin\n")
    done = fewshot("families", "-v", pythonpath=[tmp_path, PLUGINS])
    assert "line-nav" in done.stdout and "option train_goals: an integer, default 0" in \
        done.stdout
    assert "reinforce" in fewshot("algorithms", pythonpath=[tmp_path, PLUGINS]).stdout
    assert "line-nav" not in fewshot("families", pythonpath=[PLUGINS]).stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--import", "no_such_module"], "plugin module 'no_such_module' not found"),
    (["--import", "broken_plugin"], "plugin module 'broken_plugin' failed at import: "
                                    "RuntimeError: this plugin is broken"),
    (["--family_options.train_goals", "many"], "family_options.train_goals"),
    (["--family_options.goals", "2"], "family 'line-nav' has no option goals"),
])
def test_bad_plugin_input_fails_before_any_work_naming_it(tmp_path, args, message):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    out = tmp_path / "run"
    done = fewshot(*TRAIN, "--out", str(out), *args, pythonpath=[PLUGINS, tmp_path],
                   check=False)
    assert done.returncode != 0 and message in done.stderr
    assert not out.exists()


def test_an_option_of_another_algorithm_names_the_algorithm_it_belongs_to(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--algo", "ppo", "--maml.inner_lr", "0.1", "--no-progress"])
    assert "option --maml.inner_lr belongs to algorithm maml; this run's algo is ppo" in \
        capsys.readouterr().err


def test_task_sets_are_checked_against_the_family(plugin_on_path):
    family = tasks.get("line-nav")
    sets = task_sets_from_json(family, {"sets": {"near": [{"goal": 0.1}],
                                                 "test-ood": [{"goal": 1.5}]}}, source="f")
    assert [t.goal for t in sets["near"]] == [0.1]
    with pytest.raises(ValueError, match=r"set 'near'.*unknown \['speed'\]"):
        task_sets_from_json(family, {"sets": {"near": [{"goal": 0.1, "speed": 1}]}},
                            source="f")
    with pytest.raises(ValueError, match=r"task 0 \(goal=0.5\) lies outside 'line-nav''s "
                                         r"declared test-ood split"):
        task_sets_from_json(family, {"sets": {"test-ood": [{"goal": 0.5}]}}, source="f")
    with pytest.raises(ValueError, match="task parameter 'goal' must be in"):
        task_sets_from_json(family, {"sets": {"far": [{"goal": 5.0}]}}, source="f")
    with pytest.raises(ValueError, match="tasks are of family 'point-nav'"):
        task_sets_from_json(family, {"family": "point-nav", "sets": {"a": []}}, source="f")


def test_the_registry_refuses_a_second_algorithm_of_the_same_name(plugin_on_path):
    algorithm = registry.get("reinforce")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(algorithm)
    with pytest.raises(ValueError, match="must offer a 'trained' learner"):
        registry.Algorithm(name="x", config=type(algorithm.config()), build=algorithm.build,
                           trainer=algorithm.trainer, learners={})
