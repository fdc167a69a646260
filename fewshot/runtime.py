"""Run-time helpers the training and evaluation drivers share: derived seeds, torch threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


def derived_seed(*keys: int) -> int:
    """A 32-bit seed that depends on every key (run seed, iteration, phase)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
