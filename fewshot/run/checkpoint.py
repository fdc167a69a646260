"""Checkpoints and run manifests: written atomically, read back without unpickling objects.

A checkpoint is a dict of state_dicts, tensors and plain numbers saved with torch.save and
loaded with `weights_only=True`, so loading never runs code. It carries its run's
identity (the config, apart from `iterations`, and the seed), so a checkpoint copied from
another run is refused on --resume. Every file is written to a temporary name in the same
folder, flushed to disk, then renamed over the old one: a crash leaves either the old
file or the new one, never half of one, and the next writer removes the temporaries of
writers that died.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from fewshot.provenance import provenance

CHECKPOINT = "checkpoint.pt"
MANIFEST = "manifest.json"
REQUIRED = ("iteration", "env_steps", "learner", "seed")
"""Keys every checkpoint has; "trainer" (the trainer's own state) and "identity" (the
run's config) were added later and are optional when reading."""


def make_folder(path: Path, what: str = "folder") -> Path:
    """Create `path` (and its parents) as a directory, or explain why it cannot be one:
    a clear NotADirectoryError when it, or one of its parents, is a file."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                whose = "" if place == path else f" (a parent of {path})"
                raise NotADirectoryError(f"{place}{whose} is a file; a {what} is a directory")
            break
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)` so that readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise naming(error, path) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def naming(error: OSError, path: Path) -> OSError:
    """`error` with the file it happened to, if it named none (a failed write or fsync)."""
    if error.filename or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def publish_dir(finished: Path, final: Path) -> None:
    """Move a finished folder to `final`, replacing any older one there. Readers see the
    old folder or the new one, never a half-written one (while the two renames run,
    `final` is briefly absent). Two processes must not publish to one `final` at once
    (hold `lock.exclusive(final.parent)`)."""
    finished, final = Path(finished), Path(final)
    for stale in final.parent.glob(f".{final.name}.old-*"):  # left by a killed publish
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(finished, final)
        shutil.rmtree(old)
    else:
        os.replace(finished, final)


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / CHECKPOINT
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the half-written `.NAME.*.tmp` files killed writers left in `run_dir`;
    returns them. Call it only while holding the folder's lock, so no live writer owns
    them."""
    removed = sorted(p for p in Path(run_dir).glob(".*.tmp") if p.is_file())
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The run's checkpoint, checked: a dict with the REQUIRED keys whose learner weights
    are finite. A clear error, naming the file, if it is missing, unreadable, or not one."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: the run has not saved one yet")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt file
        raise ValueError(f"checkpoint {path} is corrupt or not a fewshot checkpoint: "
                         f"{error}") from error
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a fewshot "
                         "checkpoint (a dict)")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}: it was not written by "
                         f"`fewshot train` (a checkpoint has {list(REQUIRED)})")
    if not isinstance(state["learner"], dict):
        raise ValueError(f"checkpoint {path}: 'learner' must be a state_dict, got "
                         f"{type(state['learner']).__name__}")
    bad = [name for name, value in named_tensors(state["learner"])
           if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"checkpoint {path} has NaN or infinite weights in {bad}: the run "
                         "diverged before this checkpoint; resume from an earlier copy or "
                         "retrain with a smaller learning rate")
    return state


def named_tensors(tree: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """The tensors in nested dicts and lists, named by their path ("policy.0.weight")."""
    if torch.is_tensor(tree):
        return [(prefix, tree)]
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    return [named for key, value in items
            for named in named_tensors(value, f"{prefix}.{key}" if prefix else str(key))]


def write_manifest(run_dir: Path, **fields: Any) -> None:
    """A new run's manifest: what produced it (provenance) and `fields`."""
    manifest = {**provenance(), **fields, "resumes": []}
    atomic_write_text(Path(run_dir) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def record_resume(run_dir: Path, *, at_iteration: int, **fields: Any) -> None:
    """Add a resume (its provenance, iteration and `fields`) to the manifest, keeping the
    rest."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {"note": f"the manifest was missing or unreadable at iteration "
                            f"{at_iteration}"}
    manifest.setdefault("resumes", []).append({"at_iteration": at_iteration,
                                               **provenance(), **fields})
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
