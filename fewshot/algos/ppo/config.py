"""Settings of the three algorithms trained by PPO over trials: `rl2` (RL2Config), and
the Markov baselines `ppo` and `oracle` (MarkovPPOConfig). Each is its run config's
section (`rl2:`, `ppo:`, `oracle:`) and its flags (`--rl2.lr`, `--ppo.lr`, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fewshot.checks import require
from fewshot.nn.policy import ACTIVATIONS, INIT_LOG_STD_RANGE


@dataclass
class PPOSettings:
    """What every PPO-trained algorithm reads: the tasks per iteration and the update."""

    meta_batch_size: int = 20
    """Training tasks per iteration."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda."""
    normalize_advantages: bool = True
    """Normalise advantages over each iteration's batch."""
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
    input_l1: float = 0.0
    """Weight of an L1 penalty on the weights that read the observation (the first
    layers of actor and critic; the GRU's input weights): an information bottleneck that
    drives inputs the policy can do without, such as distractors, to zero weight."""
    max_grad_norm: float = 0.5
    """Gradients are rescaled to at most this norm."""
    scale_rewards: bool = True
    """Divide rewards by the running std of discounted returns before GAE, so the critic's
    targets stay near unit scale (without it, a large value loss dominates the clipped
    gradient and the policy barely moves: cheetah-vel returns of -250 do that)."""

    def __post_init__(self) -> None:
        for name in ("meta_batch_size", "ppo_epochs", "minibatches"):
            value = getattr(self, name)
            require(value >= 1, name, "an integer >= 1", value)
        require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        require(0 <= self.gae_lambda <= 1, "gae_lambda", "in [0, 1]", self.gae_lambda)
        low, high = INIT_LOG_STD_RANGE
        require(low <= self.init_log_std <= high, "init_log_std", f"in [{low}, {high}]",
                self.init_log_std)
        require(self.lr > 0, "lr", "> 0", self.lr)
        require(0 < self.clip < 1, "clip", "in (0, 1)", self.clip)
        for name in ("value_coef", "entropy_coef", "input_l1"):
            value = getattr(self, name)
            require(value >= 0, name, ">= 0", value)
        require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)


@dataclass
class RL2Config(PPOSettings):
    """RL²: a GRU actor-critic trained by PPO over trials of several episodes."""

    episodes_per_trial: int = 10
    """Episodes of one task in a row, with the hidden state carried across them."""
    hidden_size: int = 128
    """GRU width."""
    bptt_window: int = 0
    """0: back-propagate through whole trials. W > 0: truncated BPTT over windows of W
    steps, each starting from the hidden state the sampler had there (minibatches are
    then of windows)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("episodes_per_trial", "hidden_size"):
            value = getattr(self, name)
            require(value >= 1, name, "an integer >= 1", value)
        require(self.bptt_window >= 0, "bptt_window",
                "0 (whole trials) or a window length >= 1", self.bptt_window)


@dataclass
class MarkovPPOConfig(PPOSettings):
    """Multi-task PPO: an MLP actor-critic of the observation (the oracle's also sees the
    task's parameters), trained on one-episode trials."""

    episodes_per_task: int = 20
    """Episodes per training task per iteration."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the actor's and critic's hidden layers."""
    activation: str = "tanh"
    """Hidden-layer nonlinearity: tanh or relu."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.episodes_per_task >= 1, "episodes_per_task", "an integer >= 1",
                self.episodes_per_task)
        require(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
                "hidden_sizes", "a non-empty list of integers >= 1", self.hidden_sizes)
        require(self.activation in ACTIVATIONS, "activation", f"one of {sorted(ACTIVATIONS)}",
                self.activation)
