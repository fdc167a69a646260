"""Run folders refuse what would lose or mix data, and say so clearly: one writer at a
time, checkpoints that belong to their run, a run stopped early restarts without manual
cleanup, torn or foreign files are named, work that cannot fit is refused up front."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from fewshot import cli
from fewshot.algos.maml.trainer import MAMLTrainer
from fewshot.run.checkpoint import load_checkpoint, named_tensors
from fewshot.run.lock import RunFolderBusyError, RunLock

TINY = ["--family", "point-nav", "--maml.meta_batch_size", "2", "--maml.episodes_per_task",
        "2", "--horizon", "10", "--maml.hidden_sizes", "[8]", "--no-progress"]


def train(out, *args):
    return cli.main(["train", *TINY, "--out", str(out), *args])


def resume(out, *args):
    return cli.main(["train", "--out", str(out), "--resume", "--no-progress", *args])


def same_weights(a, b):
    a, b = dict(named_tensors(a["learner"])), dict(named_tensors(b["learner"]))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def metrics_iterations(out):
    lines = (out / "metrics.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


@pytest.fixture
def done(tmp_path):
    """A finished 2-iteration run."""
    out = tmp_path / "run"
    assert train(out, "--iterations", "2", "--checkpoint_every", "1") == 0
    return out


def test_a_second_writer_is_refused_naming_the_holder_and_how_to_break_the_lock(done):
    busy = rf"in use by pid {os.getpid()} on host .*delete {done / '.lock'}"
    with RunLock(done), pytest.raises(SystemExit, match=busy):
        resume(done, "--iterations", "3")
    assert metrics_iterations(done) == [0, 1]  # the refused writer wrote nothing


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(done):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fewshot.run.lock import RunLock\n"
         f"with RunLock({str(done)!r}):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"), RunLock(done):
            pass
    finally:
        holder.kill()  # as kill -9: the operating system releases the lock
        holder.wait()
    with RunLock(done):
        pass


def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path, done):
    other = tmp_path / "other"
    assert train(other, "--iterations", "2", "--seed", "1") == 0
    shutil.copy(other / "checkpoint.pt", done / "checkpoint.pt")
    with pytest.raises(SystemExit, match="checkpoint of another run: its seed is 1, this "
                                         r"run's \(config.yaml\) is 0"):
        resume(done, "--iterations", "3")
    with pytest.raises(SystemExit, match="checkpoint of another run"):
        cli.main(["evaluate", str(done), "--tasks", "1", "--trials", "1", "--no-progress"])


def test_a_checkpoint_of_another_setting_is_refused_naming_the_setting(tmp_path, done):
    other = tmp_path / "other"
    assert train(other, "--iterations", "2", "--maml.inner_lr", "0.5") == 0
    shutil.copy(other / "checkpoint.pt", done / "checkpoint.pt")
    with pytest.raises(SystemExit, match=r"maml.inner_lr: 0.5 there, 0.1 here"):
        resume(done, "--iterations", "3")


def test_a_checkpoint_of_another_algorithm_is_refused(tmp_path, done):
    other = tmp_path / "ppo"
    assert cli.main(["train", "--algo", "ppo", "--family", "point-nav", "--horizon", "10",
                     "--ppo.meta_batch_size", "2", "--iterations", "1", "--no-progress",
                     "--out", str(other)]) == 0
    shutil.copy(other / "checkpoint.pt", done / "checkpoint.pt")
    with pytest.raises(SystemExit, match=r"checkpoint of another run \(algo: 'ppo' there, "
                                         r"'maml' here"):
        resume(done, "--iterations", "3")


def test_a_config_edited_to_another_family_or_algorithm_is_refused_by_the_checkpoint(done):
    config = yaml.safe_load((done / "config.yaml").read_text())
    (done / "config.yaml").write_text(yaml.safe_dump({**config, "family": "cheetah-vel"}))
    with pytest.raises(SystemExit, match=r"checkpoint of another run .*family: 'point-nav' "
                                         "there, 'cheetah-vel' here"):
        resume(done, "--iterations", "3")


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_default(done):
    """A setting added to the library after the run was saved: the run had its default,
    so the checkpoint still resumes; set to anything else it is another run."""
    state = load_checkpoint(done)
    del state["identity"]["maml"]["fisher_subsample"]
    torch.save(state, done / "checkpoint.pt")
    assert resume(done, "--iterations", "3") == 0
    assert metrics_iterations(done) == [0, 1, 2]
    state = load_checkpoint(done)
    del state["identity"]["maml"]["fisher_subsample"]
    torch.save(state, done / "checkpoint.pt")
    config = yaml.safe_load((done / "config.yaml").read_text())
    config["maml"]["fisher_subsample"] = 2
    (done / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=r"maml.fisher_subsample: None there, 2 here"):
        resume(done, "--iterations", "4")


def test_an_old_checkpoint_without_identity_that_does_not_fit_the_model_is_named(done):
    state = load_checkpoint(done)
    del state["identity"]
    state["learner"]["policy"] = {"weight": torch.zeros(3, 3)}
    torch.save(state, done / "checkpoint.pt")
    with pytest.raises(SystemExit, match=r"checkpoint.pt does not fit a maml model on "
                                         r"point-nav"):
        resume(done, "--iterations", "3")


@pytest.mark.parametrize(("state", "message"), [
    ({"learner": {}}, r"lacks \['iteration', 'env_steps', 'seed'\]"),
    ([1, 2, 3], "holds a list, not a fewshot checkpoint"),
    ({"iteration": 1, "env_steps": 1, "seed": 0, "learner": 5}, "'learner' must be a "
                                                                "state_dict"),
])
def test_a_checkpoint_without_its_keys_is_named(done, state, message):
    torch.save(state, done / "checkpoint.pt")
    with pytest.raises(SystemExit, match=message):
        resume(done, "--iterations", "3")


def test_nan_weights_in_a_checkpoint_are_named_when_it_is_loaded(done):
    state = load_checkpoint(done)
    name = next(iter(state["learner"]["policy"]))
    state["learner"]["policy"][name][0] = float("nan")
    torch.save(state, done / "checkpoint.pt")
    with pytest.raises(SystemExit, match=rf"NaN or infinite weights in \['policy.{name}'\]"):
        resume(done, "--iterations", "3")


def test_a_run_killed_before_its_first_checkpoint_resumes_or_restarts(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--iterations", "2") == 0
    whole = load_checkpoint(out)
    stopped = tmp_path / "stopped"
    assert train(stopped, "--iterations", "2") == 0
    (stopped / "checkpoint.pt").unlink()  # as if killed during iteration 1
    assert resume(stopped) == 0
    assert same_weights(load_checkpoint(stopped), whole)
    assert metrics_iterations(stopped) == [0, 1]
    (stopped / "checkpoint.pt").unlink()
    assert train(stopped, "--iterations", "1", "--seed", "3") == 0  # or start over
    assert load_checkpoint(stopped)["seed"] == 3 and metrics_iterations(stopped) == [0]
    assert len(list((stopped / "tensorboard").iterdir())) == 1


def test_a_folder_that_is_not_a_run_is_never_taken_over(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own\n")
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(SystemExit, match="is not empty"):
        train(mine, "--iterations", "1")
    assert (mine / "config.yaml").read_text() == "my: own\n"


def test_running_out_of_memory_mid_run_is_one_line_and_the_folder_can_be_reused(
        tmp_path, monkeypatch):
    out = tmp_path / "run"

    def allocation_fails(self, data, iteration):  # what torch raises when malloc refuses
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
                           "DefaultCPUAllocator: can't allocate memory: you tried to "
                           "allocate 1600000000000 bytes.")
    with monkeypatch.context() as patch:
        patch.setattr(MAMLTrainer, "update", allocation_fails)
        with pytest.raises(SystemExit, match=r"ran out of memory in iteration 0 \(it has "
                                             r"no checkpoint yet\): can't allocate memory: "
                                             r"you tried to allocate 1600000000000 bytes"):
            train(out, "--iterations", "1")
    assert train(out, "--iterations", "1", "--maml.hidden_sizes", "[4]") == 0


def test_other_runtime_errors_keep_their_traceback(tmp_path, monkeypatch):
    def bug(self, data, iteration):
        raise RuntimeError("a shape mismatch in a new algorithm")
    monkeypatch.setattr(MAMLTrainer, "update", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(tmp_path / "run", "--iterations", "1")


def test_a_folder_left_empty_by_a_failed_start_is_taken_by_the_same_command(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".config.yaml.123.tmp").write_text("half")  # a write cut by a full disk
    with pytest.raises(SystemExit, match=r"it is empty\); start the run with the command "
                                         "that made it, without --resume"):
        resume(empty)
    assert train(empty, "--iterations", "1") == 0
    assert load_checkpoint(empty)["iteration"] == 1
    with pytest.raises(SystemExit, match=r"not a run folder .*does not exist"):
        resume(tmp_path / "missing", *TINY)


def test_temporaries_of_killed_writers_are_removed(done):
    (done / ".checkpoint.pt.abc.tmp").write_bytes(b"half a checkpoint")
    (done / ".metrics.csv.xyz.tmp").write_bytes(b"iteration,env_st")
    assert resume(done, "--iterations", "3") == 0
    assert not list(done.glob(".*.tmp"))
    (done / ".evaluation.old-99").mkdir()  # a killed evaluation's replaced folder
    assert cli.main(["evaluate", str(done), "--tasks", "1", "--trials", "1", "--episodes",
                     "0", "--no-progress"]) == 0
    assert not list(done.glob(".*.old-*"))


def test_a_torn_last_metrics_row_is_dropped_on_resume(done):
    with (done / "metrics.csv").open("a") as f:
        f.write("2,123,-4")  # power lost while appending iteration 2's row
    assert resume(done, "--iterations", "3") == 0
    assert metrics_iterations(done) == [0, 1, 2]


def test_a_damaged_metrics_file_is_named_with_its_line(done):
    lines = (done / "metrics.csv").read_text().splitlines()
    (done / "metrics.csv").write_text("\n".join([lines[0], "garbage", lines[2]]) + "\n")
    with pytest.raises(SystemExit, match=r"metrics.csv: line 2 is not a row"):
        resume(done, "--iterations", "3")
    (done / "metrics.csv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SystemExit, match=r"metrics.csv is not UTF-8"):
        resume(done, "--iterations", "3")


def test_extending_a_run_records_the_new_iteration_count(done):
    assert resume(done, "--iterations", "3") == 0
    assert yaml.safe_load((done / "config.yaml").read_text())["iterations"] == 3
    assert load_checkpoint(done)["iteration"] == 3


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00\x01 binary", "seed: é".encode("latin-1")])
def test_non_utf8_yaml_is_named_as_a_config_file_and_as_a_run_config(tmp_path, done, payload,
                                                                      capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(payload)
    with pytest.raises(SystemExit):
        train(tmp_path / "new", "--config", str(bad))
    assert f"cannot read settings from {bad}" in capsys.readouterr().err
    (done / "config.yaml").write_bytes(payload)
    with pytest.raises(SystemExit):
        resume(done, "--iterations", "3")
    assert "config.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"config.yaml is not a valid run config"):
        cli.main(["evaluate", str(done), "--no-progress"])


def test_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    with pytest.raises(SystemExit, match="is a file; a run folder is a directory"):
        train(target, "--iterations", "1")
    with pytest.raises(SystemExit, match=r"file \(a parent of .*run\) is a file"):
        train(target / "run", "--iterations", "1")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("args", [["--horizon", "1000000000000"],
                                  ["--maml.meta_batch_size", "1000000000000"],
                                  ["--maml.episodes_per_task", "1000000000000"],
                                  ["--maml.hidden_sizes", "[20000000]"]])
def test_work_that_cannot_fit_is_refused_before_the_folder_exists(tmp_path, args):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"needs about .* of memory; this machine has .* "
                                         "available"):
        train(out, "--iterations", "1", *args)
    assert not out.exists()
