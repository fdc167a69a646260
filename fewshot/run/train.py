"""The training driver, the same for every algorithm: build the family, the model and the
algorithm's trainer, then loop {collect, update, log, checkpoint}, writing everything
to a run folder.

The driver owns what algorithms share: torch's thread counts (one for collecting next
to MuJoCo, `update_threads` for the update), timing, the metrics row, checkpoints and
exact resume. A row is {iteration, env_steps, the trainer's collect metrics,
env_steps_per_s, sample_seconds, update_seconds, the trainer's update metrics}.

Trainers derive every generator of iteration i from (seed, i, ...), so the run's random
state after i iterations is the pair (seed, i): a resumed run continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fewshot.registry import TrainContext, Trainer
from fewshot.run.checkpoint import (
    load_checkpoint,
    record_resume,
    save_checkpoint,
    write_manifest,
)
from fewshot.run.config import RunConfig
from fewshot.run.folder import build_model, prepare_run_dir, write_config
from fewshot.run.metrics import MetricsLog
from fewshot.runtime import torch_threads


def make_trainer(config: RunConfig) -> tuple[Any, Trainer]:
    """The model (initial weights) and its trainer; a family the algorithm cannot run
    fails here, before the run folder exists."""
    model = build_model(config)
    context = TrainContext(family=config.family_object(), seed=config.seed,
                           horizon=config.horizon, nthread=config.nthread)
    return model, config.algorithm.trainer(model, config.algo_config, context)


def train(config: RunConfig, out: Path, *, resume: bool = False,
          progress: bool = True) -> Any:
    """Train `config.algo` on `config.family` in run folder `out`; returns the model."""
    out = Path(out)
    model, trainer = make_trainer(config)
    config = prepare_run_dir(out, config, resume=resume)
    torch.set_num_threads(config.torch_threads)
    start = 0
    if resume:
        state = load_checkpoint(out)
        model.load_state_dict(state["learner"])
        trainer.load_state_dict(state.get("trainer", {}))
        start, trainer.env_steps = int(state["iteration"]), int(state["env_steps"])
        if start >= config.iterations:  # finished: leave the run folder as it is
            if progress:
                print(f"{out}: already at iteration {start} of {config.iterations}; "
                      "pass a larger --iterations to continue it", file=sys.stderr)
            return model
    if resume:
        write_config(out, config)  # the run's iterations may have been extended
        record_resume(out, at_iteration=start)
    else:
        write_manifest(out, seed=config.seed, family=config.family, algo=config.algo)
    log = MetricsLog(out, start=start)
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               desc=f"{config.algo} {config.family}", disable=not progress, unit="it")
    started = time.perf_counter()
    try:
        for iteration in bar:
            row = run_iteration(trainer, iteration, update_threads=config.update_threads)
            log.log(row)
            bar.set_postfix(**trainer.progress(row), steps_per_s=f"{row['env_steps_per_s']:.0f}",
                            elapsed=f"{time.perf_counter() - started:.0f}s")
            done = iteration + 1
            if done % config.checkpoint_every == 0 or done == config.iterations:
                save_checkpoint(out, {"iteration": done, "env_steps": trainer.env_steps,
                                      "learner": model.state_dict(),
                                      "trainer": trainer.state_dict(), "seed": config.seed})
    finally:
        log.close()
        bar.close()
    return model


def run_iteration(trainer: Trainer, iteration: int, *, update_threads: int) -> dict[str, float]:
    """One iteration: collect, then update with `update_threads` torch threads."""
    steps_before = trainer.env_steps
    started = time.perf_counter()
    data, collected = trainer.collect(iteration)
    sample_seconds = time.perf_counter() - started
    env_steps = trainer.env_steps
    started = time.perf_counter()
    with torch_threads(update_threads):
        updated = trainer.update(data, iteration)
    return {"iteration": iteration, "env_steps": env_steps, **collected,
            "env_steps_per_s": (env_steps - steps_before) / sample_seconds,
            "sample_seconds": sample_seconds,
            "update_seconds": time.perf_counter() - started, **updated}
