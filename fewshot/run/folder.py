"""Run folders: starting a run in one, checking one for --resume, and loading a finished
run's config and trained model for evaluation.

A run folder holds config.yaml (the resolved settings, see run/config.py), metrics.csv
and tensorboard/ (one row per iteration), checkpoint.pt (the model's state_dict, the
trainer's extra state, counters) and manifest.json (provenance).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml

from fewshot.checks import ConfigError
from fewshot.collect import env_spec
from fewshot.run.checkpoint import CHECKPOINT, MANIFEST, atomic_write_text, load_checkpoint
from fewshot.run.config import RunConfig, from_dict, to_dict
from fewshot.run.lock import LOCK
from fewshot.run.metrics import METRICS, TENSORBOARD
from fewshot.runtime import derived_seed

CONFIG = "config.yaml"
RUN_FILES = (CONFIG, MANIFEST, METRICS, TENSORBOARD, CHECKPOINT)


def read_config(path: Path) -> RunConfig:
    """The run config in a YAML file; a clear error for anything else."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_bytes().decode("utf-8"))
        return from_dict(values, source=str(path))
    except (UnicodeDecodeError, yaml.YAMLError, TypeError, ConfigError) as error:
        raise ValueError(f"{path} is not a valid run config: {error}") from error


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, yaml.safe_dump(to_dict(config), sort_keys=False))


def open_run(out: Path, config: RunConfig, *, resume: bool
             ) -> tuple[RunConfig, dict[str, Any] | None]:
    """Check `out` for a new run or for --resume: the config to run and the checkpoint
    to continue from (None: start at iteration 0). Call it holding the folder's lock;
    it writes nothing.

    A new run needs an empty folder. On resume the saved config is used; only
    `iterations` may differ (to extend a run), and the checkpoint must be this run's. A
    run stopped before its first checkpoint resumes from iteration 0, or is replaced by a
    new run with other settings; one stopped before it wrote its config left an empty
    folder, which a new run accepts.
    """
    out = Path(out)
    config_path = out / CONFIG
    contents = sorted(p.name for p in out.iterdir() if p.name != LOCK)
    if not resume:
        if contents and not stopped_before_first_checkpoint(contents):
            raise FileExistsError(f"run folder {out} is not empty (it holds "
                                  f"{_listing(contents)}); pass --resume to continue it, "
                                  "or choose another --out")
        return config, None
    if not config_path.is_file():
        held = f"it holds {_listing(contents)}" if contents else "it is empty"
        raise FileNotFoundError(f"--resume: {out} is not a run folder (no {CONFIG}; {held})"
                                + ("" if contents else "; start the run with the command "
                                   "that made it, without --resume"))
    saved = read_config(config_path)
    wanted, have = _flat(to_dict(config)), _flat(to_dict(saved))
    differing = [k for k in _differing(wanted, have) if k != "iterations"]
    if differing:
        raise ValueError(f"--resume: settings {differing} differ from the run's "
                         f"{CONFIG}; only iterations may change when resuming")
    config = dataclasses.replace(saved, iterations=config.iterations)
    if not (out / CHECKPOINT).is_file():
        return config, None
    state = load_checkpoint(out)
    check_identity(state, config, out / CHECKPOINT)
    return config, state


def stopped_before_first_checkpoint(contents: list[str]) -> bool:
    """Whether a folder holding `contents` holds only the files of a run that never saved
    a checkpoint: a new run may start over in it (nothing trained is lost), as --resume
    may."""
    return CONFIG in contents and set(contents) <= set(RUN_FILES) - {CHECKPOINT}


def identity(config: RunConfig) -> dict[str, Any]:
    """What makes a run this run: its config apart from `iterations`, as plain data."""
    values = json.loads(json.dumps(to_dict(config)))
    values.pop("iterations")
    return values


def check_identity(state: dict[str, Any], config: RunConfig, path: Path) -> None:
    """Refuse a checkpoint of another run (another seed, family, algorithm, setting).
    Checkpoints from before identities were recorded are checked by their seed."""
    if int(state["seed"]) != config.seed:
        raise ValueError(f"{path} is a checkpoint of another run: its seed is "
                         f"{state['seed']}, this run's ({CONFIG}) is {config.seed}")
    if "identity" not in state:
        return
    theirs, ours = _flat(state["identity"]), _flat(identity(config))
    # a setting added since the checkpoint was written: the run had its default then
    theirs.update({k: ours[k] for k in set(ours) - set(theirs) if ours[k] == _default(config, k)})
    differing = _differing(theirs, ours)
    if differing:
        shown = "; ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here"
                          for k in differing[:5])
        raise ValueError(f"{path} is a checkpoint of another run ({shown}); resume it "
                         f"in its own folder, or delete it to restart this run")


def _default(config: RunConfig, key: str) -> Any:
    """The default of the setting `key` ("maml.inner_lr") in its config dataclass, as
    plain data (None when it has none)."""
    *section, name = key.split(".")
    # a common setting, or one of the algorithm's section (stored under its name)
    owner = {(): config, (config.algo,): config.algo_config}.get(tuple(section))
    if not dataclasses.is_dataclass(owner):
        return None
    for f in dataclasses.fields(owner):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return json.loads(json.dumps(f.default))
            if f.default_factory is not dataclasses.MISSING:
                return json.loads(json.dumps(f.default_factory()))
    return None


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"maml": {"inner_lr": 0.1}} -> {"maml.inner_lr": 0.1}, to name what differs."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two flat settings (missing counts as None)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _listing(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def build_model(config: RunConfig) -> Any:
    """The algorithm's model with its initial weights (fixed by the run's seed)."""
    torch.manual_seed(derived_seed(config.seed, 0xF00D))  # initial weights only
    return config.algorithm.build(config.algo_config, env_spec(config.family_object()))


class TrainedRun(NamedTuple):
    config: RunConfig
    model: Any
    iteration: int  # the iterations the checkpoint's model was trained for


def load_run(run_dir: Path) -> tuple[RunConfig, Any]:
    """A run's config and its trained model; clear errors for anything else."""
    config, model, _ = load_trained(run_dir)
    return config, model


def load_trained(run_dir: Path) -> TrainedRun:
    """load_run, and the iteration its checkpoint was saved at."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG}); "
                                "make one with `fewshot train`")
    config = read_config(config_path)
    state = load_checkpoint(run_dir)
    check_identity(state, config, run_dir / CHECKPOINT)
    model = build_model(config)
    load_weights(model, state, run_dir / CHECKPOINT, config)
    return TrainedRun(config, model, int(state["iteration"]))


def load_weights(model: Any, state: dict[str, Any], path: Path, config: RunConfig) -> None:
    """The checkpoint's learner weights into `model`; a clear error if they do not fit
    (a checkpoint of another algorithm or family, or a config edited since)."""
    try:
        model.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        first = str(error).strip().splitlines()[:3]
        raise ValueError(f"{path} does not fit a {config.algo} model on {config.family} "
                         f"as {CONFIG} describes it (was the config edited, or the "
                         f"checkpoint copied from another run?): {' '.join(first)}"
                         ) from error
