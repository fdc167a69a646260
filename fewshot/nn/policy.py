"""Policies: MLPs, the Gaussian MLP run with explicit parameters, and the Gaussian maths
every learner uses (log-probability, KL, sampling).

Adapted parameters are a dict[str, Tensor] passed to `torch.func.functional_call`, never
module state: `policy(obs)` uses the module's own parameters, `distribution(policy,
params, obs)` any others (a task's adapted ones, a line-search candidate).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
INIT_LOG_STD_RANGE = (-10.0, 10.0)
"""Allowed initial log standard deviations: a std from e^-10 to e^10 action ranges (beyond,
log-probabilities lose all precision in float32)."""


def mlp(sizes: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Linear layers of the given widths [in, hidden..., out], `activation` between them
    (none after the last). Parameter names: 0.weight, 0.bias, 2.weight, ..."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"mlp: need at least two sizes, each >= 1, got {list(sizes)}")
    layers: list[nn.Module] = []
    for width, out in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(width, out), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class GaussianMLP(nn.Module):
    """a ~ N(mean(obs), diag(exp(log_std))^2): tanh (or ReLU) hidden layers, a linear mean
    head and a state-independent learnable log-std, one per action dimension."""

    def __init__(self, *, obs_size: int, action_size: int,
                 hidden_sizes: Sequence[int] = (64, 64), init_log_std: float = 0.0,
                 activation: str = "tanh") -> None:
        super().__init__()
        if obs_size < 1 or action_size < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError(f"GaussianMLP: sizes must be >= 1, got obs_size={obs_size}, "
                             f"action_size={action_size}, hidden_sizes={list(hidden_sizes)}")
        self.mean = mlp([obs_size, *hidden_sizes, action_size], activation)
        self.log_std = nn.Parameter(torch.full((action_size,), float(init_log_std)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [..., A] and log-std [A] for observations [..., O]."""
        return self.mean(obs), self.log_std

    def params(self) -> Params:
        """The module's own parameters as a dict (the meta-parameters)."""
        return dict(self.named_parameters())

    def run(self, params: Mapping[str, torch.Tensor],
            obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward() with `params` in place of the module's own (any it lacks are the
        module's): the same operations as functional_call, without its swapping of module
        state, which costs more than the network itself on every step the collector takes.
        Differentiable, and vmap-able over stacked parameters."""
        x = obs
        for index, layer in enumerate(self.mean):
            if isinstance(layer, nn.Linear):
                weight = params.get(f"mean.{index}.weight", layer.weight)
                x = nn.functional.linear(x, weight, params.get(f"mean.{index}.bias", layer.bias))
            else:
                x = layer(x)
        return x, params.get("log_std", self.log_std)


def distribution(policy: nn.Module, params: Mapping[str, torch.Tensor],
                 obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-std of the policy run with `params` instead of its own."""
    if type(policy).forward is GaussianMLP.forward:  # its direct path (same operations)
        return policy.run(params, obs)
    return functional_call(policy, dict(params), (obs,))


def log_prob(mean: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """log N(act; mean, exp(log_std)^2), summed over the action dimension."""
    z = (act - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - LOG_SQRT_2PI).sum(-1)


def kl_divergence(mean_old: torch.Tensor, log_std_old: torch.Tensor, mean: torch.Tensor,
                  log_std: torch.Tensor) -> torch.Tensor:
    """KL(old || new) between diagonal Gaussians, summed over the action dimension."""
    var_old, var = torch.exp(2 * log_std_old), torch.exp(2 * log_std)
    kl = log_std - log_std_old + (var_old + (mean_old - mean) ** 2) / (2 * var) - 0.5
    return kl.sum(-1)


def sample_action(mean: torch.Tensor, log_std: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return mean + torch.exp(log_std) * noise
