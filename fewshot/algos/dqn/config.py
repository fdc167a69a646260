"""Settings of the algorithm `dqn`: its run config's `dqn:` section and its `--dqn.*` flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from fewshot.checks import require
from fewshot.nn.policy import ACTIVATIONS


@dataclass
class DQNConfig:
    """DQN (double-Q targets, Huber loss, a hard-updated target network) over an ensemble
    of Q-networks, with a blocker: a classifier of catastrophic (observation, choice)."""

    num_envs: int = 16
    """Simulations stepped together; each iteration runs one episode in each, of a
    training task drawn for it."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the hidden layers of each Q-network and of the blocker."""
    activation: str = "relu"
    """Hidden-layer nonlinearity: tanh or relu."""
    lr: float = 1e-3
    """Adam step size (Q-networks and blocker)."""
    gamma: float = 0.99
    """Discount factor."""
    buffer_size: int = 100_000
    """Transitions the replay buffer keeps (the oldest are dropped first)."""
    batch_size: int = 128
    """Transitions per gradient step."""
    learning_starts: int = 1000
    """Transitions stored before the first gradient step."""
    updates_per_iteration: int = 16
    """Gradient steps per iteration (on the Q-networks and on the blocker each)."""
    target_update_every: int = 250
    """Gradient steps between hard updates of the target networks (copied whole)."""
    max_grad_norm: float = 10.0
    """Each member's gradient is rescaled to at most this norm."""
    epsilon_start: float = 1.0
    """Probability of a random choice at the start of training."""
    epsilon_end: float = 0.05
    """Probability of a random choice after `epsilon_decay_steps` env-steps."""
    epsilon_decay_steps: int = 20_000
    """Env-steps over which epsilon falls linearly from epsilon_start to epsilon_end."""
    ensemble_size: int = 1
    """K Q-networks trained together, each with its own initial weights and bootstrap of
    the data (1: plain DQN)."""
    bootstrap_prob: float = 0.5
    """With ensemble_size > 1: the probability that a member trains on a transition (each
    member's own Bernoulli mask, drawn when the transition is stored)."""
    catastrophe_outcome: str = "catastrophe"
    """The family's outcome the blocker learns to predict; the blocker is off on a family
    that does not flag it."""
    block_threshold: float = 0.5
    """The blocked learners refuse choices whose predicted probability of the catastrophe
    is above this."""

    def __post_init__(self) -> None:
        for name in ("num_envs", "buffer_size", "batch_size", "updates_per_iteration",
                     "target_update_every", "epsilon_decay_steps", "ensemble_size"):
            value = getattr(self, name)
            require(value >= 1, name, "an integer >= 1", value)
        require(self.learning_starts >= 0, "learning_starts", "an integer >= 0",
                self.learning_starts)
        # the two fields together: the error names both, whichever of them was set
        require(self.learning_starts <= self.buffer_size, "learning_starts",
                f"at most dqn.buffer_size ({self.buffer_size}, the transitions the buffer "
                f"keeps)", self.learning_starts)
        require(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
                "hidden_sizes", "a non-empty list of integers >= 1", self.hidden_sizes)
        require(self.activation in ACTIVATIONS, "activation", f"one of {sorted(ACTIVATIONS)}",
                self.activation)
        require(self.lr > 0, "lr", "> 0", self.lr)
        require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)
        for name in ("epsilon_start", "epsilon_end", "block_threshold"):
            value = getattr(self, name)
            require(0 <= value <= 1, name, "in [0, 1]", value)
        require(0 < self.bootstrap_prob <= 1, "bootstrap_prob", "in (0, 1]",
                self.bootstrap_prob)
        require(self.catastrophe_outcome.isidentifier(), "catastrophe_outcome",
                "an outcome's name (an identifier)", self.catastrophe_outcome)
