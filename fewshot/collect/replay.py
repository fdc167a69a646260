"""ReplayBuffer: a ring buffer of transitions for off-policy learners, saved in checkpoints.

A transition is a set of named tensors (obs, act, rew, next_obs, terminated, ...) with a
leading axis B of transitions; the buffer keeps the last `capacity` of them and samples
them with an explicit generator, uniformly or by given weights. Its state_dict holds the
stored tensors and the write position, so a resumed run replays exactly what an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class ReplayBuffer:
    """The last `capacity` transitions, sampled uniformly (or by weights)."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self.storage: dict[str, torch.Tensor] = {}
        self.size = 0       # transitions stored
        self.position = 0   # where the next one goes

    def __len__(self) -> int:
        return self.size

    def add(self, **transitions: torch.Tensor) -> None:
        """Store B transitions: every field a tensor [B, ...], the same fields each time."""
        if not transitions:
            raise ValueError("ReplayBuffer.add: give at least one field")
        sizes = {name: x.shape[0] for name, x in transitions.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"ReplayBuffer.add: fields differ in length: {sizes}")
        if not self.storage:
            self.storage = {name: torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype)
                            for name, x in transitions.items()}
        if set(transitions) != set(self.storage):
            raise ValueError(f"ReplayBuffer.add: fields {sorted(transitions)}, but the buffer "
                             f"holds {sorted(self.storage)}")
        for name, x in transitions.items():  # check everything before writing anything
            if x.shape[1:] != self.storage[name].shape[1:]:
                raise ValueError(f"ReplayBuffer.add: field {name} has shape "
                                 f"{tuple(x.shape[1:])} per transition, the buffer "
                                 f"{tuple(self.storage[name].shape[1:])}")
        count = next(iter(sizes.values()))
        kept = min(count, self.capacity)  # of more than capacity, only the last ones stay
        start = (self.position + count - kept) % self.capacity
        rows = (start + torch.arange(kept)) % self.capacity
        for name, x in transitions.items():
            self.storage[name][rows] = x[count - kept:].to(self.storage[name].dtype)
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def stored(self, name: str) -> torch.Tensor:
        """Field `name` of the stored transitions, [size, ...], in storage order (the order
        of `sample`'s weights); a view, not a copy."""
        if name not in self.storage:
            raise ValueError(f"ReplayBuffer: no field {name!r}; it holds "
                             f"{sorted(self.storage)}")
        return self.storage[name][:self.size]

    def sample(self, count: int, generator: torch.Generator, *,
               weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`count` transitions drawn with replacement: uniformly, or with probability
        proportional to `weights` [size] (one per stored transition, in storage order), e.g.
        to draw a rare label as often as a common one."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        if weights is None:
            rows = torch.randint(0, self.size, (count,), generator=generator)
        else:
            if weights.shape != (self.size,) or not bool((weights >= 0).all()) \
                    or not bool(weights.sum() > 0):
                raise ValueError(f"ReplayBuffer.sample: weights must be [{self.size}] (one "
                                 f"per stored transition), >= 0, not all 0; got shape "
                                 f"{tuple(weights.shape)}")
            cumulative = weights.double().cumsum(0)  # inverse-CDF draws: any buffer size
            u = torch.rand(count, generator=generator, dtype=torch.float64) * cumulative[-1]
            rows = torch.searchsorted(cumulative, u, right=True).clamp(max=self.size - 1)
        return {name: x[rows] for name, x in self.storage.items()}

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "size": self.size, "position": self.position,
                "storage": {name: x[:self.size].clone() for name, x in self.storage.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"ReplayBuffer: the saved buffer holds {state['capacity']} "
                             f"transitions, this one {self.capacity}")
        self.size, self.position = int(state["size"]), int(state["position"])
        self.storage = {}
        for name, x in state["storage"].items():
            self.storage[name] = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype)
            self.storage[name][:self.size] = x
