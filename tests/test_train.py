"""fewshot train end to end: run folders, checkpoints, exact resume, config errors, learning."""

import csv
import json

import pytest
import torch
import yaml

import fewshot.algos.maml.maml as maml_module
from fewshot import cli
from fewshot.algos.maml.config import MAMLConfig
from fewshot.run.checkpoint import load_checkpoint
from fewshot.run.config import RunConfig
from fewshot.run.train import train

TINY = ["--family", "point-nav", "--maml.meta_batch_size", "3", "--maml.episodes_per_task",
        "2", "--horizon", "20", "--maml.hidden_sizes", "[16]", "--no-progress"]


def run(tmp_path, *args):
    return cli.main(["train", *TINY, *args])


def read_metrics(folder):
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def policy_tensors(folder):
    return load_checkpoint(folder)["learner"]["policy"]


def test_a_run_folder_holds_config_metrics_tensorboard_checkpoint_and_manifest(tmp_path):
    out = tmp_path / "run"
    assert run(tmp_path, "--iterations", "3", "--checkpoint_every", "2", "--out", str(out)) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["family"] == "point-nav" and config["maml"]["outer"] == "trpo"
    rows = read_metrics(out)
    assert [int(r["iteration"]) for r in rows] == [0, 1, 2]
    assert {"return_step0", "return_step1", "env_steps", "kl"} <= set(rows[0])
    assert int(rows[-1]["env_steps"]) <= 3 * 2 * 20 * 2 * 3
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert load_checkpoint(out)["iteration"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and {"torch", "mujoco", "numpy"} <= set(manifest["versions"])
    assert manifest["git_revision"]
    assert not list(out.glob(".*.tmp"))


def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    run(tmp_path, "--iterations", "4", "--checkpoint_every", "2", "--out", str(full))
    run(tmp_path, "--iterations", "2", "--checkpoint_every", "2", "--out", str(split))
    # resuming takes the run's own settings; only --iterations is given again
    assert cli.main(["train", "--out", str(split), "--resume", "--iterations", "4",
                     "--no-progress"]) == 0
    a, b = policy_tensors(full), policy_tensors(split)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(full)["env_steps"] == load_checkpoint(split)["env_steps"]
    returns = [[r[c] for c in ("iteration", "return_step0", "return_step1")]
               for r in read_metrics(full)]
    assert returns == [[r[c] for c in ("iteration", "return_step0", "return_step1")]
                       for r in read_metrics(split)]


def test_resuming_a_finished_run_changes_nothing_in_its_folder(tmp_path):
    out = tmp_path / "done"
    run(tmp_path, "--iterations", "2", "--checkpoint_every", "2", "--out", str(out))

    def contents():  # the lock file names its last holder, so it is left out
        return {f: f.read_bytes() for f in out.rglob("*") if f.is_file() and f.name != ".lock"}

    before = contents()
    assert cli.main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert contents() == before


def test_resume_drops_metric_rows_written_after_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "--iterations", "3", "--checkpoint_every", "2", "--out", str(out))
    # as if the process died after logging iteration 2 but before checkpointing it
    state = load_checkpoint(out)
    state["iteration"] = 2
    torch.save(state, out / "checkpoint.pt")
    cli.main(["train", "--out", str(out), "--resume", "--no-progress"])
    assert [int(r["iteration"]) for r in read_metrics(out)] == [0, 1, 2]


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = tmp_path / "run"
    run(tmp_path, "--iterations", "1", "--out", str(out))
    with pytest.raises(SystemExit, match=r"settings \['seed'\] differ"):
        cli.main(["train", "--out", str(out), "--resume", "--seed", "5", "--no-progress"])


def test_an_existing_run_folder_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "--iterations", "1", "--out", str(out))
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit, match=r"not empty .*; pass --resume"):
        run(tmp_path, "--iterations", "1", "--out", str(out))
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_without_a_run_folder_or_with_a_corrupt_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="not a run folder"):
        cli.main(["train", "--out", str(tmp_path / "none"), "--resume", "--no-progress"])
    out = tmp_path / "run"
    run(tmp_path, "--iterations", "1", "--out", str(out))
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="corrupt"):
        cli.main(["train", "--out", str(out), "--resume", "--no-progress"])


@pytest.mark.parametrize(("args", "message"), [
    (["--maml.inner_lr", "-1"], "maml.inner_lr must be > 0"),
    (["--maml.outer", "sgd"], "maml.outer must be one of"),
    (["--family", "nope"], "unknown task family 'nope'; known families"),
    (["--iterations", "0"], "iterations must be an integer >= 1"),
    (["--maml.gamma", "1.5"], "maml.gamma must be in"),
    (["--iterations", "many"], "iterations"),
    (["--no_such_setting", "1"], "no_such_setting"),
    (["--update_threads", "0"], "update_threads must be an integer >= 1"),
    (["--maml.line_search_ratio", "1"], "maml.line_search_ratio must be in (0, 1)"),
    (["--maml.activation", "sigmoid"], "maml.activation must be one of ['relu', 'tanh']"),
    (["--ppo.lr", "0.1"], "option --ppo.lr belongs to algorithm ppo; this run's algo is maml"),
    (["--family_options.size", "3"], "family 'point-nav' has no option size"),
    (["--algo", "sgd"], "unknown algorithm 'sgd'"),
])
def test_bad_settings_fail_before_any_work_naming_the_field(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(tmp_path, "--out", str(out), *args)
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_meta_update_runs_with_update_threads_and_sampling_gets_its_threads_back(
        tmp_path, monkeypatch):
    seen = []
    original = maml_module.MAML.meta_update

    def recording(self, pre, post):
        seen.append(torch.get_num_threads())
        return original(self, pre, post)

    monkeypatch.setattr(maml_module.MAML, "meta_update", recording)
    previous = torch.get_num_threads()
    try:
        run(tmp_path, "--iterations", "2", "--update_threads", "2", "--torch_threads", "1",
            "--out", str(tmp_path / "run"))
        assert seen == [2, 2]
        assert torch.get_num_threads() == 1  # the sampling setting, restored after updates
    finally:
        torch.set_num_threads(previous)


def test_a_family_maml_cannot_run_fails_before_the_run_folder_exists(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="needs a Box action space"):
        run(tmp_path, "--family", "bandit", "--out", str(out))
    assert not out.exists()


def test_a_config_file_with_an_unknown_key_or_wrong_type_is_refused(tmp_path, capsys):
    for body, message in (("iterations: 2\nbogus_key: 1\n", "bogus_key"),
                          ("maml:\n  inner_lr: fast\n", "inner_lr")):
        path = tmp_path / "config.yaml"
        path.write_text(body)
        with pytest.raises(SystemExit):
            run(tmp_path, "--config", str(path), "--out", str(tmp_path / "run"))
        assert message in capsys.readouterr().err
        assert not (tmp_path / "run").exists()


def test_a_config_file_sets_fields_and_flags_after_it_override(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("iterations: 1\nmaml:\n  inner_lr: 0.05\n  max_kl: 0.02\n")
    out = tmp_path / "run"
    cli.main(["train", *TINY, "--config", str(path), "--maml.max_kl", "0.03",
              "--out", str(out)])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["iterations"] == 1
    assert saved["maml"]["inner_lr"] == 0.05 and saved["maml"]["max_kl"] == 0.03


def test_maml_learns_to_adapt_on_point_nav(tmp_path):
    config = RunConfig(family="point-nav", seed=1, iterations=12,
                       algo_config=MAMLConfig(meta_batch_size=10, episodes_per_task=10))
    train(config, tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    pre = [float(r["return_step0"]) for r in rows]
    post = [float(r["return_step1"]) for r in rows]
    gain = sum(b - a for a, b in zip(pre[-4:], post[-4:], strict=True)) / 4
    # a random Gaussian policy scores about -85 here; one adaptation step must now buy
    # several points and the adapted policy must be far better than at the start
    assert gain > 5.0
    assert sum(post[-4:]) / 4 > post[0] + 20.0
