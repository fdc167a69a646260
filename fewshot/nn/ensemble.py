"""Ensembles: M networks of one architecture with their weights stacked, run together.

Every ensemble in fewshot (of policies, of Q-networks) is this module: the members'
parameters are stored as tensors with a leading member axis M, and a forward pass runs
all members at once with `torch.func.vmap` over `functional_call`, instead of a Python
loop over M modules. Letters: M members, N inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Ensemble(nn.Module):
    """M independently initialised copies of `make()`, run together.

    `forward(*inputs)` gives every member the same inputs and returns outputs with a
    leading axis M; `forward_each(*inputs)` gives member m the inputs' slice [m].
    `members` are seeded by the caller's torch RNG (call torch.manual_seed first for
    reproducible weights), one after another, as M separate `make()` calls would be.
    """

    def __init__(self, make: Callable[[], nn.Module], members: int) -> None:
        super().__init__()
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ValueError(f"Ensemble: members must be an integer >= 1, got {members!r}")
        modules = [make() for _ in range(members)]
        params, buffers = stack_module_state(modules)
        if buffers:
            raise ValueError(f"Ensemble: members with buffers ({sorted(buffers)}) are not "
                             "supported; use modules whose state is all parameters")
        self.members = members
        self.names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach().clone())
                                         for n in self.names])
        # the architecture without weights: functional_call supplies them
        self._base = (copy.deepcopy(modules[0]).to("meta"),)

    @property
    def module(self) -> nn.Module:
        """The members' architecture, without weights (on the meta device): for its
        attributes and methods that need no parameters."""
        return self._base[0]

    def params(self) -> dict[str, torch.Tensor]:
        """The stacked parameters by member-module name, each [M, ...]."""
        return dict(zip(self.names, self.stacked, strict=True))

    def member(self, m: int) -> dict[str, torch.Tensor]:
        """Member m's parameters (views into the stacked tensors)."""
        if not 0 <= m < self.members:
            raise ValueError(f"member must be in [0, {self.members}), got {m}")
        return {name: p[m] for name, p in self.params().items()}

    def _call(self, params: dict[str, torch.Tensor], *inputs: torch.Tensor):
        return functional_call(self._base[0], params, inputs)

    def forward(self, *inputs: torch.Tensor):
        """Every member on the same inputs: outputs [M, ...]."""
        return vmap(self._call, in_dims=(0, *([None] * len(inputs))))(self.params(), *inputs)

    def forward_each(self, *inputs: torch.Tensor):
        """Member m on inputs[...][m]: inputs and outputs [M, ...]."""
        for x in inputs:
            if x.shape[0] != self.members:
                raise ValueError(f"forward_each: inputs need a leading axis of {self.members} "
                                 f"members, got shape {tuple(x.shape)}")
        return vmap(self._call)(self.params(), *inputs)
