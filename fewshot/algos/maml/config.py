"""MAML's settings: the `maml:` section of a run's config, the `--maml.*` flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from fewshot.checks import require
from fewshot.nn.policy import ACTIVATIONS, INIT_LOG_STD_RANGE

OUTER_OPTIMIZERS = ("trpo", "ppo")


@dataclass
class MAMLConfig:
    """MAML: gradient-based adaptation, meta-trained with TRPO or PPO."""

    meta_batch_size: int = 20
    """Tasks per meta-iteration."""
    episodes_per_task: int = 20
    """Episodes sampled per task for each adaptation step and for the meta-update."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the policy's hidden layers."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: tanh, or relu (the MAML paper's policies)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (1: returns minus the linear baseline)."""
    normalize_advantages: bool = True
    """Normalise advantages per task."""
    num_inner_steps: int = 1
    """Policy-gradient steps of adaptation; fresh episodes are sampled after each."""
    inner_lr: float = 0.1
    """Inner-loop step size (the initial value when learned), for log-probabilities
    summed over action dimensions (code that averages them over A dimensions needs A
    times this value for the same step)."""
    learn_inner_lr: bool = False
    """Meta-learn one inner step size per parameter entry (Meta-SGD)."""
    first_order: bool = False
    """Drop the second-order terms of the meta-gradient (FOMAML)."""
    outer: str = "trpo"
    """Outer optimizer: trpo (conjugate gradient, line search) or ppo (clipped, ProMP-style)."""
    max_kl: float = 0.01
    """TRPO: bound on the mean KL between adapted policies before and after the update,
    summed over action dimensions (a bound on the per-dimension average is this divided
    by the number of action dimensions)."""
    cg_iterations: int = 10
    """TRPO: conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """TRPO: damping added to the Fisher-vector product."""
    fisher_subsample: int = 1
    """TRPO: estimate the curvature of the Fisher-vector products (the adaptation's
    Jacobian and the Fisher of the adapted policies) on every n-th episode of each task,
    at the adapted policies of all episodes; the gradient, KL and line search keep every
    episode. 1: all episodes (exact). Common TRPO code uses every 5th sample."""
    line_search_steps: int = 15
    """TRPO: backtracking steps before the update is rejected."""
    line_search_ratio: float = 0.8
    """TRPO: step shrink factor per backtracking step (0.8 as in the MAML code: the full
    step's KL lands just above the bound about half the time, and 0.5 would then halve
    the step)."""
    ppo_epochs: int = 5
    """PPO: optimisation epochs per meta-batch."""
    ppo_clip: float = 0.2
    """PPO: clipping range of the likelihood ratio."""
    outer_lr: float = 1e-3
    """PPO: Adam step size."""

    def __post_init__(self) -> None:
        for name in ("meta_batch_size", "episodes_per_task", "num_inner_steps",
                     "cg_iterations", "line_search_steps", "ppo_epochs",
                     "fisher_subsample"):
            value = getattr(self, name)
            require(value >= 1, name, "an integer >= 1", value)
        require(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
                "hidden_sizes", "a non-empty list of integers >= 1", self.hidden_sizes)
        require(self.activation in ACTIVATIONS, "activation", f"one of {sorted(ACTIVATIONS)}",
                self.activation)
        require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        require(0 <= self.gae_lambda <= 1, "gae_lambda", "in [0, 1]", self.gae_lambda)
        low, high = INIT_LOG_STD_RANGE
        require(low <= self.init_log_std <= high, "init_log_std", f"in [{low}, {high}]",
                self.init_log_std)
        require(self.inner_lr > 0, "inner_lr", "> 0", self.inner_lr)
        require(self.outer in OUTER_OPTIMIZERS, "outer", f"one of {list(OUTER_OPTIMIZERS)}",
                self.outer)
        require(self.max_kl > 0, "max_kl", "> 0", self.max_kl)
        require(self.cg_damping >= 0, "cg_damping", ">= 0", self.cg_damping)
        require(self.fisher_subsample <= self.episodes_per_task, "fisher_subsample",
                f"at most episodes_per_task ({self.episodes_per_task})",
                self.fisher_subsample)
        require(0 < self.line_search_ratio < 1, "line_search_ratio", "in (0, 1)",
                self.line_search_ratio)
        require(0 < self.ppo_clip < 1, "ppo_clip", "in (0, 1)", self.ppo_clip)
        require(self.outer_lr > 0, "outer_lr", "> 0", self.outer_lr)
