"""Fault injection: training processes killed at random moments and in the middle of
writing files, disks that fill up, read-only folders, two writers on one folder, and
Ctrl-C. After each fault the run folder holds no corrupt file, and resuming it finishes
the run exactly as an uninterrupted one: the same weights, trainer state and metrics,
bit for bit.

Each training runs in its own process (`python -c DRIVER`), which can patch one
file-writing function to kill the process at its n-th call, after the data is written
but before it is published, or halfway through a metrics row.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from fewshot.run.checkpoint import load_checkpoint, named_tensors

ITERATIONS = 5
KILLS = int(os.environ.get("FEWSHOT_FAULT_KILLS", 8))  # at most, in the random-kill test
TINY = ["--family", "point-nav", "--maml.meta_batch_size", "2", "--maml.episodes_per_task",
        "2", "--horizon", "10", "--maml.hidden_sizes", "[8]", "--no-progress",
        "--checkpoint_every", "1", "--iterations", str(ITERATIONS)]
TIMING = ("env_steps_per_s", "sample_seconds", "update_seconds")

DRIVER = """
import os, signal, sys
# as in a terminal: Ctrl-C raises KeyboardInterrupt (children of a background shell
# start with SIGINT ignored, and Python then leaves it ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
fault, argv = sys.argv[1], sys.argv[2:]
if fault != "none":
    where, nth = fault.split(":")
    nth, calls = int(nth), [0]
    if where == "publish":     # killed after a file's data is on disk, before its rename
        import fewshot.run.checkpoint as module
        real = module.os.fsync
        def patched(fd):
            real(fd)
            calls[0] += 1
            if calls[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        module.os.fsync = patched
    elif where == "row":       # killed halfway through appending a metrics row
        import fewshot.run.metrics as module
        real = module.os.write
        def patched(fd, data):
            calls[0] += 1
            if calls[0] == nth:
                real(fd, data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(fd, data)
        module.os.write = patched
from fewshot import cli
sys.exit(cli.main(["train", *argv]))
"""


def start(out, *args, fault="none"):
    return subprocess.Popen([sys.executable, "-c", DRIVER, fault, "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(out, *args, fault="none"):
    process = start(out, *args, fault=fault)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def rerun(out, args):
    """What a user does after a crash: the same command, with --resume once the run has
    written its config (before that, the folder is empty and the command starts anew)."""
    return ["--resume", "--no-progress"] if (out / "config.yaml").exists() else list(args)


def resume_to_the_end(out, args):
    code, stderr = finish(out, *rerun(out, args))
    assert code == 0, stderr


def fingerprint(out):
    """What must be identical between an interrupted and an uninterrupted run."""
    state = load_checkpoint(out)
    tensors = {name: value for name, value in named_tensors(state)}
    lines = (out / "metrics.csv").read_text().splitlines()
    columns = lines[0].split(",")
    kept = [i for i, c in enumerate(columns) if c not in TIMING]
    rows = [[row.split(",")[i] for i in kept] for row in lines[1:]]
    numbers = {k: v for k, v in state.items() if not isinstance(v, dict)}
    return tensors, rows, numbers, yaml.safe_load((out / "config.yaml").read_text())


def assert_identical(a, b):
    ta, rows_a, numbers_a, config_a = fingerprint(a)
    tb, rows_b, numbers_b, config_b = fingerprint(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert rows_a == rows_b and numbers_a == numbers_b and config_a == config_b


def corrupt_files(out):
    """Files of the run folder that exist but cannot be read back whole."""
    bad = []
    readers = {"config.yaml": lambda p: yaml.safe_load(p.read_text())["algo"],
               "manifest.json": lambda p: json.loads(p.read_text())["seed"],
               "checkpoint.pt": lambda p: load_checkpoint(p.parent)}
    for name, read in readers.items():
        path = out / name
        if path.exists():
            try:
                read(path)
            except Exception:  # any failure to read counts
                bad.append(name)
    return bad


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    code, stderr = finish(out, *TINY)
    assert code == 0, stderr
    return out


def test_kill_9_at_random_moments_then_resume_gives_the_same_run(tmp_path):
    longer = [*TINY[:-1], "30"]
    whole = tmp_path / "whole"
    started = time.monotonic()
    assert finish(whole, *longer)[0] == 0
    duration = time.monotonic() - started  # process start-up included
    rng = random.Random(0)
    out, kills = tmp_path / "run", 0
    process = start(out, *longer)
    while True:
        try:
            process.wait(timeout=rng.uniform(0.1, duration / 3) if kills < KILLS else None)
            break
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            assert corrupt_files(out) == []
            process = start(out, *rerun(out, longer))
    assert process.returncode == 0, process.stderr.read()
    assert kills >= min(3, KILLS)
    assert_identical(out, whole)
    print(f"{kills} kills, resumed identical, 0 corrupt files")


@pytest.mark.parametrize("fault", ["publish:1", "publish:2", "publish:4", "publish:7",
                                   "row:1", "row:3"])
def test_kill_9_in_the_middle_of_a_write_then_resume_gives_the_same_run(reference, tmp_path,
                                                                        fault):
    out = tmp_path / "run"
    code, _ = finish(out, *TINY, fault=fault)
    assert code == -signal.SIGKILL
    assert corrupt_files(out) == []
    resume_to_the_end(out, TINY)
    assert not list(out.glob(".*.tmp"))
    assert_identical(out, reference)


def test_two_writers_on_one_folder_one_is_refused_and_nothing_is_duplicated(tmp_path):
    out = tmp_path / "run"
    first = start(out, *TINY[:-1], "1000")  # still running when the second one comes
    deadline = time.monotonic() + 60
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    code, stderr = finish(out, "--resume", "--no-progress")
    assert first.poll() is None, "the first writer ended before the second one came"
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130
    assert code == 1 and f"is in use by pid {first.pid}" in stderr
    assert "Traceback" not in stderr
    iterations = [int(line.split(",")[0])
                  for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert iterations == list(range(len(iterations)))


def test_ctrl_c_stops_cleanly_keeping_the_last_checkpoint_and_saying_how_to_resume(
        reference, tmp_path):
    out = tmp_path / "run"
    process = start(out, *TINY[:-1], "1000")  # long enough to be interrupted
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "its last checkpoint (iteration" in stderr
    assert f"Continue with: fewshot train --out {out} --resume" in stderr
    saved = load_checkpoint(out)["iteration"]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert int(lines[-1].split(",")[0]) >= saved - 1
    code, stderr = finish(out, "--resume", "--no-progress", "--iterations", str(ITERATIONS))
    assert code == 0, stderr
    if saved <= ITERATIONS:
        assert_identical(out, reference)


# Full disks and read-only folders need a small file system of their own: a tmpfs,
# which only root may mount (CI runs as root).

@contextmanager
def small_disk(tmp_path, size="256k"):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount, leave_bytes):
    """Fill the disk, leaving about `leave_bytes` free."""
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    (mount / "filler").write_bytes(b"\0" * max(free - leave_bytes, 0))


@pytest.mark.parametrize("leave_kib", [0, 4, 8, 16, 24, 32])
def test_a_full_disk_stops_with_a_message_and_the_run_resumes_once_space_is_freed(
        reference, tmp_path, leave_kib):
    with small_disk(tmp_path) as mount:
        out = mount / "run"
        fill(mount, leave_kib * 1024)
        code, stderr = finish(out, *TINY)
        print(f"{leave_kib} KiB free: exit {code}, {stderr.strip()[-200:]!r}")
        if code != 0:  # it ran out of space somewhere
            assert code == 1, stderr
            assert "No space left on device" in stderr and "Traceback" not in stderr
            assert corrupt_files(out) == [] if out.exists() else True
        (mount / "filler").unlink()
        if code != 0:
            resume_to_the_end(out, TINY)
        assert_identical(out, reference)


def test_a_read_only_run_folder_is_refused_with_a_message(reference, tmp_path):
    with small_disk(tmp_path, size="1m") as mount:
        out = mount / "run"
        assert finish(out, *TINY)[0] == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        before = {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
        code, stderr = finish(out, "--resume", "--no-progress", "--iterations",
                              str(ITERATIONS + 2))
        assert code == 1 and "Read-only file system" in stderr and "Traceback" not in stderr
        assert {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()} == before
        code, stderr = finish(mount / "fresh", *TINY)
        assert code == 1 and "Read-only file system" in stderr and "Traceback" not in stderr
