"""Run folders: creating one for a new run, checking one for --resume, and loading a
finished run's config and trained model for evaluation.

A run folder holds config.yaml (the resolved settings, see run/config.py), metrics.csv
and tensorboard/ (one row per iteration), checkpoint.pt (the model's state_dict, the
trainer's extra state, counters) and manifest.json (provenance).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import yaml

from fewshot.checks import ConfigError
from fewshot.collect import env_spec
from fewshot.run.checkpoint import atomic_write_text, load_checkpoint
from fewshot.run.config import RunConfig, from_dict, to_dict
from fewshot.runtime import derived_seed

CONFIG = "config.yaml"


def read_config(path: Path) -> RunConfig:
    """The run config in a YAML file; a clear error for anything else."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
        return from_dict(values, source=str(path))
    except (UnicodeDecodeError, yaml.YAMLError, TypeError, ConfigError) as error:
        raise ValueError(f"{path} is not a valid run config: {error}") from error


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, yaml.safe_dump(to_dict(config), sort_keys=False))


def prepare_run_dir(out: Path, config: RunConfig, *, resume: bool) -> RunConfig:
    """Create the run folder, or check it for --resume; returns the config to run.

    On resume the saved config is used; only `iterations` may differ (to extend a run).
    """
    out = Path(out)
    config_path = out / CONFIG
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise FileExistsError(f"run folder {out} is not empty; pass --resume to continue "
                                  "it, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, config)
        return config
    if not config_path.is_file():
        raise FileNotFoundError(f"--resume: {out} is not a run folder (no {CONFIG})")
    saved = read_config(config_path)
    wanted, have = to_dict(config), to_dict(saved)
    differing = [k for k in set(wanted) | set(have)
                 if k != "iterations" and wanted.get(k) != have.get(k)]
    if differing:
        raise ValueError(f"--resume: settings {sorted(differing)} differ from the run's "
                         f"{CONFIG}; only iterations may change when resuming")
    return dataclasses.replace(saved, iterations=config.iterations)


def build_model(config: RunConfig) -> Any:
    """The algorithm's model with its initial weights (fixed by the run's seed)."""
    torch.manual_seed(derived_seed(config.seed, 0xF00D))  # initial weights only
    return config.algorithm.build(config.algo_config, env_spec(config.family_object()))


def load_run(run_dir: Path) -> tuple[RunConfig, Any]:
    """A run's config and its trained model; clear errors for anything else."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG}); "
                                "make one with `fewshot train`")
    config = read_config(config_path)
    state = load_checkpoint(run_dir)
    model = build_model(config)
    try:
        model.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"the checkpoint in {run_dir} does not match its {CONFIG}: "
                         f"{error}") from error
    return config, model
