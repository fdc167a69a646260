"""Training configuration: typed dataclasses, validated before any work starts.

Each field's docstring is its `--help` text. `fewshot train` fills these from defaults,
an optional YAML file and flags (`--maml.inner_lr 0.05`); an unknown key, a wrong type or
a value out of range fails with a message naming the field and what it allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tasks
from fewshot.policy import ACTIVATIONS

ALGOS = ("maml", "rl2", "ppo", "oracle")
OUTER_OPTIMIZERS = ("trpo", "ppo")


def _require(ok: bool, name: str, allowed: str, value: object) -> None:
    if not ok:
        raise ValueError(f"config field {name} must be {allowed}, got {value!r}")


@dataclass
class MAMLConfig:
    """MAML: gradient-based adaptation, meta-trained with TRPO or PPO."""

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
        _require(self.num_inner_steps >= 1, "maml.num_inner_steps", "an integer >= 1",
                 self.num_inner_steps)
        _require(self.inner_lr > 0, "maml.inner_lr", "> 0", self.inner_lr)
        _require(self.outer in OUTER_OPTIMIZERS, "maml.outer",
                 f"one of {list(OUTER_OPTIMIZERS)}", self.outer)
        _require(self.max_kl > 0, "maml.max_kl", "> 0", self.max_kl)
        _require(self.cg_iterations >= 1, "maml.cg_iterations", "an integer >= 1",
                 self.cg_iterations)
        _require(self.cg_damping >= 0, "maml.cg_damping", ">= 0", self.cg_damping)
        _require(self.line_search_steps >= 1, "maml.line_search_steps", "an integer >= 1",
                 self.line_search_steps)
        _require(0 < self.line_search_ratio < 1, "maml.line_search_ratio", "in (0, 1)",
                 self.line_search_ratio)
        _require(self.ppo_epochs >= 1, "maml.ppo_epochs", "an integer >= 1", self.ppo_epochs)
        _require(0 < self.ppo_clip < 1, "maml.ppo_clip", "in (0, 1)", self.ppo_clip)
        _require(self.outer_lr > 0, "maml.outer_lr", "> 0", self.outer_lr)


@dataclass
class PPOConfig:
    """PPO over trials: RL² (recurrent), and the ppo and oracle baselines (Markov)."""

    episodes_per_trial: int = 10
    """RL²: episodes of one task in a row, with the hidden state carried across them."""
    hidden_size: int = 128
    """RL²: GRU width (the Markov baselines use hidden_sizes)."""
    lr: float = 3e-4
    """Adam step size."""
    ppo_epochs: int = 4
    """Passes over each iteration's trials."""
    minibatches: int = 4
    """Minibatches of whole trials per pass (back-propagation through each trial)."""
    clip: float = 0.2
    """Clipping range of the likelihood ratio."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradients are rescaled to at most this norm."""
    bptt_window: int = 0
    """0: back-propagate through whole trials. W > 0: truncated BPTT over windows of W
    steps, each starting from the hidden state the sampler had there (minibatches are
    then of windows)."""
    scale_rewards: bool = True
    """Divide rewards by the running std of discounted returns before GAE, so the critic's
    targets stay near unit scale (without it, a large value loss dominates the clipped
    gradient and the policy barely moves: cheetah-vel returns of -250 do that)."""

    def __post_init__(self) -> None:
        for name in ("episodes_per_trial", "hidden_size", "ppo_epochs", "minibatches"):
            value = getattr(self, name)
            _require(value >= 1, f"ppo.{name}", "an integer >= 1", value)
        _require(self.lr > 0, "ppo.lr", "> 0", self.lr)
        _require(0 < self.clip < 1, "ppo.clip", "in (0, 1)", self.clip)
        for name in ("value_coef", "entropy_coef"):
            value = getattr(self, name)
            _require(value >= 0, f"ppo.{name}", ">= 0", value)
        _require(self.max_grad_norm > 0, "ppo.max_grad_norm", "> 0", self.max_grad_norm)
        _require(self.bptt_window >= 0, "ppo.bptt_window",
                 "0 (whole trials) or a window length >= 1", self.bptt_window)


@dataclass
class TrainConfig:
    """Meta-training run settings."""

    algo: str = "maml"
    """Learning algorithm."""
    family: str = "point-nav"
    """Task family (see `fewshot families`)."""
    seed: int = 0
    """Seed of everything random in the run: tasks, env noise, actions, initial weights."""
    iterations: int = 100
    """Meta-iterations (one meta-batch of tasks each)."""
    meta_batch_size: int = 20
    """Tasks per meta-iteration."""
    episodes_per_task: int = 20
    """Episodes sampled per task for each adaptation step and for the meta-update."""
    horizon: int | None = None
    """Steps per episode (default: the family's)."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the policy's hidden layers."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: tanh, or relu (the MAML paper's point-nav policy)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (1: returns minus the linear baseline)."""
    normalize_advantages: bool = True
    """Normalise advantages per task."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many iterations (and at the end)."""
    nthread: int | None = None
    """MuJoCo threads (default: all available cores)."""
    torch_threads: int = 1
    """Threads for torch's CPU ops: small networks gain nothing from more, and a second
    busy thread pool next to MuJoCo's slows both (20x measured on 2 loaded cores)."""
    update_threads: int = 1
    """Threads for torch during the meta-update, while MuJoCo is idle. On an otherwise
    idle machine, all cores make the update about 1.5x faster (measured on 2); on a busy
    one, torch's spinning threads can make it many times slower, hence the default."""
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    """MAML settings."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO settings of the rl2, ppo and oracle algorithms."""

    def __post_init__(self) -> None:
        _require(self.algo in ALGOS, "algo", f"one of {list(ALGOS)}", self.algo)
        _require(self.family in tasks.names(), "family", f"one of {tasks.names()}",
                 self.family)
        for name in ("iterations", "meta_batch_size", "episodes_per_task", "checkpoint_every"):
            value = getattr(self, name)
            _require(value >= 1, name, "an integer >= 1", value)
        _require(self.horizon is None or self.horizon >= 1, "horizon",
                 "an integer >= 1 or null", self.horizon)
        _require(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
                 "hidden_sizes", "a non-empty list of integers >= 1", self.hidden_sizes)
        _require(self.activation in ACTIVATIONS, "activation", f"one of {sorted(ACTIVATIONS)}",
                 self.activation)
        _require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        _require(0 <= self.gae_lambda <= 1, "gae_lambda", "in [0, 1]", self.gae_lambda)
        _require(self.torch_threads >= 1, "torch_threads", "an integer >= 1",
                 self.torch_threads)
        _require(self.update_threads >= 1, "update_threads", "an integer >= 1",
                 self.update_threads)
        _require(self.nthread is None or self.nthread >= 1, "nthread",
                 "an integer >= 1 or null", self.nthread)
