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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fewshot.registry import TrainContext, Trainer
from fewshot.run.checkpoint import (
    CHECKPOINT,
    make_folder,
    record_resume,
    remove_temporaries,
    save_checkpoint,
    write_manifest,
)
from fewshot.run.config import RunConfig
from fewshot.run.folder import build_model, identity, load_weights, open_run, write_config
from fewshot.run.lock import RunLock
from fewshot.run.metrics import MetricsLog
from fewshot.runtime import torch_threads


def make_trainer(config: RunConfig) -> tuple[Any, Trainer]:
    """The model (initial weights) and its trainer; a family the algorithm cannot run
    fails here, before the run folder exists."""
    with memory_errors_named("building the model and trainer"):
        model = build_model(config)
        context = TrainContext(family=config.family_object(), seed=config.seed,
                               horizon=config.horizon, nthread=config.nthread)
        return model, config.algorithm.trainer(model, config.algo_config, context)


class OutOfMemoryError(ValueError):
    """Memory ran out for work whose size no estimate caught up front (a huge layer)."""


@contextmanager
def memory_errors_named(doing: str) -> Iterator[None]:
    """Turn a failed allocation (MemoryError, or torch's "can't allocate memory") into
    OutOfMemoryError saying what was being done."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "can't allocate memory" not in str(error):
            raise
        detail = str(error).split("DefaultCPUAllocator: ")[-1].strip()
        raise OutOfMemoryError(f"ran out of memory {doing}: {detail or 'MemoryError'}; "
                               "ask for less (smaller networks, batches or horizon)"
                               ) from error


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; the message says what the run folder kept and how to
    continue."""


def train(config: RunConfig, out: Path, *, resume: bool = False, progress: bool = True,
          report: Callable[[dict[str, float]], None] | None = None,
          started_by: dict[str, Any] | None = None) -> Any:
    """Train `config.algo` on `config.family` in run folder `out`; returns the model.
    `report(row)`, if given, receives each iteration's metrics row once it is logged (a
    sweep passes them on to Ray Tune). `started_by`, if given, is recorded in the
    manifest with the provenance of this start or resume (a sweep: its command and trial,
    as the process itself is a Ray worker).

    Settings that cannot work fail before the folder is touched; a second process on the
    same folder is refused (RunFolderBusyError); Ctrl-C stops cleanly (Interrupted), keeping
    the last checkpoint.
    """
    out = Path(out)
    model, trainer = make_trainer(config)
    if resume and not out.exists():
        raise FileNotFoundError(f"--resume: {out} is not a run folder (it does not exist)")
    make_folder(out, "run folder")
    with RunLock(out):
        remove_temporaries(out)
        config, state = open_run(out, config, resume=resume)
        start = 0
        if state is not None:
            load_weights(model, state, out / CHECKPOINT, config)
            try:
                trainer.load_state_dict(state.get("trainer", {}))
            except (KeyError, RuntimeError, TypeError, ValueError) as error:
                raise ValueError(f"{out / CHECKPOINT}: the {config.algo} trainer's state "
                                 f"does not fit: {error}") from error
            start, trainer.env_steps = int(state["iteration"]), int(state["env_steps"])
        elif resume and progress:
            print(f"{out}: no checkpoint yet; starting at iteration 0", file=sys.stderr)
        if start >= config.iterations:  # finished: leave the run folder as it is
            if progress:
                print(f"{out}: already at iteration {start} of {config.iterations}; "
                      "pass a larger --iterations to continue it", file=sys.stderr)
            return model
        torch.set_num_threads(config.torch_threads)
        write_config(out, config)  # on resume, the run's iterations may have been extended
        origin = {"started_by": started_by} if started_by else {}
        if start > 0:
            record_resume(out, at_iteration=start, **origin)
        else:
            write_manifest(out, seed=config.seed, family=config.family, algo=config.algo,
                           **origin)
        run_loop(trainer, model, config, out, start=start, progress=progress, report=report)
    return model


def run_loop(trainer: Trainer, model: Any, config: RunConfig, out: Path, *, start: int,
             progress: bool, report: Callable[[dict[str, float]], None] | None) -> None:
    """Iterations start..config.iterations, logging each and checkpointing on schedule."""
    log = MetricsLog(out, start=start)
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               desc=f"{config.algo} {config.family}", disable=not progress, unit="it")
    started, saved, iteration = time.perf_counter(), start, start
    try:
        for iteration in bar:
            with memory_errors_named(f"in iteration {iteration} ({kept_after(saved)})"):
                row = run_iteration(trainer, iteration, update_threads=config.update_threads)
            log.log(row)
            bar.set_postfix(**trainer.progress(row), steps_per_s=f"{row['env_steps_per_s']:.0f}",
                            elapsed=f"{time.perf_counter() - started:.0f}s")
            done = iteration + 1
            if done % config.checkpoint_every == 0 or done == config.iterations:
                save_checkpoint(out, {"iteration": done, "env_steps": trainer.env_steps,
                                      "learner": model.state_dict(),
                                      "trainer": trainer.state_dict(), "seed": config.seed,
                                      "identity": identity(config)})
                saved = done
            if report is not None:  # after the checkpoint: a report may stop the run
                report(row)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during iteration {iteration}; {kept_after(saved)}. "
                          f"Continue with: fewshot train --out {out} --resume") from None
    finally:
        log.close()
        bar.close()


def kept_after(saved: int) -> str:
    return (f"its last checkpoint (iteration {saved}) is kept" if saved else
            "it has no checkpoint yet")


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
