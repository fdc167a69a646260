"""Run configs: the version-2 layout (common settings plus the algorithm's own section),
the migration of version-1 configs, and the committed benchmark runs, which were
migrated once and must still load."""

from pathlib import Path

import pytest
import yaml

from fewshot.checks import ConfigError
from fewshot.run.config import RunConfig, from_dict, migrate, to_dict
from fewshot.run.folder import load_run, read_config

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"
RUNS = Path(__file__).resolve().parents[1] / "benchmarks" / "runs"
COMMITTED = {"maml": "maml-point-nav-s0", "rl2": "rl2-bandit-n10-s0",
             "ppo": "ppo-guessing-game-s0", "oracle": "oracle-cheetah-vel-s0"}


def legacy(algo: str) -> dict:
    return yaml.safe_load((LEGACY / f"{algo}.yaml").read_text())


def test_migration_gives_each_algorithm_exactly_the_settings_it_read():
    maml = migrate(legacy("maml"))["maml"]
    assert maml["hidden_sizes"] == [100, 100] and maml["activation"] == "relu"
    assert maml["inner_lr"] == 0.1 and maml["meta_batch_size"] == 20
    rl2 = migrate(legacy("rl2"))["rl2"]
    assert rl2["episodes_per_trial"] == 10 and rl2["meta_batch_size"] == 128
    assert not {"hidden_sizes", "activation", "episodes_per_task", "inner_lr"} & set(rl2)
    ppo = migrate(legacy("ppo"))["ppo"]
    # the version-1 Markov policy was tanh whatever `activation` said
    assert ppo["activation"] == "tanh" and ppo["episodes_per_task"] == 4
    assert not {"episodes_per_trial", "hidden_size", "bptt_window", "inner_lr"} & set(ppo)
    for algo in COMMITTED:
        migrated = migrate(legacy(algo))
        assert migrated["version"] == 2 and set(migrated) & {"maml", "rl2", "ppo",
                                                             "oracle"} == {algo}


@pytest.mark.parametrize("algo", sorted(COMMITTED))
def test_the_committed_runs_hold_their_configs_migrated(algo):
    committed = yaml.safe_load((RUNS / COMMITTED[algo] / "config.yaml").read_text())
    # both resolved: options a family gained since then are at their defaults in both
    assert to_dict(from_dict(legacy(algo))) == to_dict(from_dict(committed))


@pytest.mark.parametrize("run", sorted(p.name for p in RUNS.iterdir()))
def test_every_committed_run_loads_with_its_checkpoint(run):
    config, model = load_run(RUNS / run)
    assert (RUNS / run / "config.yaml").read_text().startswith("version: 2\n")
    assert config.algo == run.split("-")[0]
    assert model.policy.state_dict()


def test_a_config_round_trips_through_yaml(tmp_path):
    config = read_config(RUNS / COMMITTED["rl2"] / "config.yaml")
    assert from_dict(yaml.safe_load(yaml.safe_dump(to_dict(config)))) == config


@pytest.mark.parametrize(("values", "message"), [
    ({"version": 3}, "config version 3 is not one this fewshot reads"),
    ({"version": 2, "algo": "maml", "ppo": {}}, r"sections \['ppo'\] are settings of other"),
    ({"version": 2, "algo": "maml", "speed": 1}, r"unknown settings \['speed'\]"),
    ({"version": 2, "algo": "maml", "maml": {"speed": 1}}, r"unknown settings \['maml.speed'\]"),
    ({"version": 2, "algo": "maml", "maml": {"inner_lr": -1}}, "maml.inner_lr must be > 0"),
    ({"version": 2, "algo": "sgd"}, "algo must be one of"),
    ({"version": 2, "family": "guessing-game", "family_options": {"train_instances": "x"}},
     "family_options: family 'guessing-game': option train_instances must be an integer"),
    ({"version": 2, "imports": "mine"}, "imports must be a list of module names"),
])
def test_bad_configs_fail_naming_the_field(values, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        from_dict(values)


def test_a_version_1_config_file_is_migrated_when_given_to_train(tmp_path):
    from fewshot.run.arguments import parse_train_args

    path = tmp_path / "old.yaml"
    path.write_text("iterations: 3\nmeta_batch_size: 7\nhidden_sizes: [8]\n"
                    "maml:\n  inner_lr: 0.05\n")
    config, _, _, _ = parse_train_args(["--config", str(path), "--no-progress"])
    settings = config.algo_config
    assert (config.iterations, settings.meta_batch_size, settings.hidden_sizes,
            settings.inner_lr) == (3, 7, [8], 0.05)


def test_resuming_longer_records_the_new_length_and_keeps_the_manifest_history(tmp_path):
    import json

    from fewshot import cli

    out = tmp_path / "run"
    tiny = ["train", "--maml.meta_batch_size", "2", "--maml.episodes_per_task", "1",
            "--horizon", "5", "--maml.hidden_sizes", "[4]", "--no-progress", "--out", str(out)]
    assert cli.main([*tiny, "--iterations", "1"]) == 0
    created = json.loads((out / "manifest.json").read_text())
    assert cli.main(["train", "--out", str(out), "--resume", "--iterations", "2",
                     "--no-progress"]) == 0
    assert read_config(out / "config.yaml").iterations == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["timestamp"] == created["timestamp"] and manifest["seed"] == 0
    assert [r["at_iteration"] for r in manifest["resumes"]] == [1]


def test_family_options_are_resolved_and_stored():
    config = RunConfig(family="guessing-game", family_options={"train_instances": 8})
    every = {"observations": "synthetic", "train_instances": 8, "train_images": 100}
    assert config.family_options == every
    assert len(config.family_object().splits["train"].boxes) == 4 * 8
    assert RunConfig(family="guessing-game").family_options == {**every,
                                                                "train_instances": 256}


def test_nthread_is_refused_for_a_family_that_steps_without_threads():
    with pytest.raises(ConfigError, match=r"nthread must be null for point-nav \(only "
                                          r"MuJoCo families"):
        RunConfig(family="point-nav", nthread=1)
    assert RunConfig(family="cheetah-vel", nthread=1).nthread == 1
