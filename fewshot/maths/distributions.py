"""Discrete action distributions as pure functions of log-probabilities: the ensemble's
combined policy pi_max (LEEP, Ghosh et al. 2021) and the KL divergence between two.

Letters: M ensemble members, A choices; any leading axes (..., e.g. T, N) pass through.
"""

from __future__ import annotations

import torch


def max_combined_log_probs(logits_MA: torch.Tensor) -> torch.Tensor:
    """log pi_max [..., A] of M members' logits [M, ..., A], where
    pi_max(a|s) = max_i pi_i(a|s) / sum_b max_i pi_i(b|s): each choice as likely as the
    member most in favour of it, renormalised. Computed in log space (no underflow)."""
    best_A = torch.log_softmax(logits_MA, -1).max(0).values
    return best_A - torch.logsumexp(best_A, -1, keepdim=True)


def categorical_kl(log_p_A: torch.Tensor, log_q_A: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_a p(a) (log p(a) - log q(a)) over the last axis, from
    normalised log-probabilities [..., A]; choices p never takes contribute 0."""
    p_A = log_p_A.exp()
    taken_A = p_A > 0
    # the choices p never takes are zeroed before the product, so that no -inf reaches
    # it and their gradients are 0 rather than NaN
    zero_A = torch.zeros_like(p_A)
    log_ratio_A = torch.where(taken_A, log_p_A, zero_A) - torch.where(taken_A, log_q_A, zero_A)
    return (p_A * log_ratio_A).sum(-1)
