"""Returns, advantages and the linear feature baseline: pure functions on sampled batches.

Letters: T time steps, N episodes (one per simulation), F baseline features.
`valid_TN` marks the steps an episode really took (True up to and including its last
step, False after termination). An episode's end, by termination or by the horizon, is
treated as final: nothing is bootstrapped past it, as in the MAML and ProMP code.
"""

from __future__ import annotations

import math

import torch


def discounted_returns(rew_TN: torch.Tensor, valid_TN: torch.Tensor,
                       gamma: float) -> torch.Tensor:
    """ret[t] = sum_{s >= t} gamma^(s - t) rew[s] over the valid steps; 0 where invalid."""
    rew_TN = rew_TN * valid_TN
    ret_TN = torch.zeros_like(rew_TN)
    running_N = torch.zeros_like(rew_TN[0])
    for t in range(rew_TN.shape[0] - 1, -1, -1):
        running_N = rew_TN[t] + gamma * running_N * valid_TN[t]
        ret_TN[t] = running_N
    return ret_TN


class ReturnScale:
    """The running standard deviation of the discounted returns seen so far (every valid
    step of every batch, merged by the parallel-variance update of Chan et al.).

    Dividing rewards by it keeps a critic's targets near unit scale whatever the family's
    reward scale (PPO's usual reward scaling); the mean is not subtracted.
    """

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, ret_TN: torch.Tensor, valid_TN: torch.Tensor) -> None:
        x = ret_TN[valid_TN.bool()].double()
        if x.numel() == 0:
            return
        n, mean = x.numel(), float(x.mean())
        delta, total = mean - self.mean, self.count + n
        self.m2 += float(((x - mean) ** 2).sum()) + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        """1 before any update; never below 1e-4."""
        return max(math.sqrt(self.m2 / self.count), 1e-4) if self.count else 1.0

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), state["mean"], state["m2"]


def gae(rew_TN: torch.Tensor, value_TN: torch.Tensor, valid_TN: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimates; the value after an episode's last step is 0.

    delta[t] = r[t] + gamma V[t+1] - V[t];  A[t] = delta[t] + gamma lam A[t+1].
    With lam = 1 this is returns minus the baseline.
    """
    T = rew_TN.shape[0]
    valid_TN = valid_TN.to(rew_TN.dtype)
    next_value_N = torch.zeros_like(rew_TN[0])
    next_adv_N = torch.zeros_like(rew_TN[0])
    adv_TN = torch.zeros_like(rew_TN)
    for t in range(T - 1, -1, -1):
        # V[t+1] counts only if step t+1 belongs to the same episode
        continues_N = valid_TN[t + 1] if t + 1 < T else torch.zeros_like(next_value_N)
        delta_N = rew_TN[t] + gamma * next_value_N * continues_N - value_TN[t]
        next_adv_N = (delta_N + gamma * lam * continues_N * next_adv_N) * valid_TN[t]
        adv_TN[t] = next_adv_N
        next_value_N = value_TN[t]
    return adv_TN


def masked_mean(x_TN: torch.Tensor, valid_TN: torch.Tensor) -> torch.Tensor:
    """Mean of x over the valid entries (0 if there are none)."""
    valid = valid_TN.to(x_TN.dtype)
    return (x_TN * valid).sum() / valid.sum().clamp_min(1.0)


def normalize(x_TN: torch.Tensor, valid_TN: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the valid entries; invalid entries stay 0."""
    mask = valid_TN.to(x_TN.dtype)
    count = mask.sum().clamp_min(1.0)
    mean = (x_TN * mask).sum() / count
    var = (((x_TN - mean) * mask) ** 2).sum() / count
    return (x_TN - mean) / (var.sqrt() + eps) * mask


def baseline_features(obs_TNO: torch.Tensor) -> torch.Tensor:
    """The linear baseline's features: obs, obs^2 (clipped), time, time^2, time^3, 1.

    Time is the step index / 100, as in the MAML and ProMP code. Shape [T, N, 2O + 4].
    """
    T, N, _ = obs_TNO.shape
    o = obs_TNO.clamp(-10.0, 10.0)
    t = (torch.arange(T, dtype=obs_TNO.dtype, device=obs_TNO.device) / 100.0)
    t_TN1 = t[:, None, None].expand(T, N, 1)
    return torch.cat([o, o * o, t_TN1, t_TN1 ** 2, t_TN1 ** 3, torch.ones_like(t_TN1)], -1)


def fit_linear_baseline(features_TNF: torch.Tensor, ret_TN: torch.Tensor,
                        valid_TN: torch.Tensor, reg: float = 1e-5) -> torch.Tensor:
    """Ridge regression of returns on features over the valid steps; weights [F].

    Solves (X^T X + reg I) w = X^T y in float64; if that fails, retries with a ten times
    larger reg, up to five times, as the reference implementation does.
    """
    mask = valid_TN.reshape(-1)
    X = features_TNF.reshape(-1, features_TNF.shape[-1])[mask].double()
    y = ret_TN.reshape(-1)[mask].double()
    eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    for attempt in range(5):
        try:
            w = torch.linalg.solve(X.T @ X + reg * (10 ** attempt) * eye, X.T @ y)
        except torch.linalg.LinAlgError:
            continue
        if torch.isfinite(w).all():
            return w.to(features_TNF.dtype)
    raise FloatingPointError("linear baseline: the least-squares fit did not converge")


def predict_baseline(features_TNF: torch.Tensor, weights_F: torch.Tensor,
                     valid_TN: torch.Tensor) -> torch.Tensor:
    return (features_TNF @ weights_F) * valid_TN
