"""Trust-region pieces: conjugate gradient and the backtracking line search (pure functions).

Used by the TRPO outer loop of MAML; flat parameter vectors throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class ConjugateGradientResult:
    solution: torch.Tensor  # x, approximately A^-1 b
    product: torch.Tensor   # A x, from the residual (b - r): no extra product with A


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iterations: int = 10, tolerance: float = 1e-10
                       ) -> ConjugateGradientResult:
    """Approximately solve A x = b for symmetric positive definite A given x -> A x."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iterations):
        if rr < tolerance:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return ConjugateGradientResult(solution=x, product=b - r)


@dataclass
class LineSearchResult:
    accepted: bool
    step_fraction: float   # the fraction of the full step taken (0 if rejected)
    objective: float       # objective at the returned parameters
    kl: float              # KL at the returned parameters (0 if rejected)
    tries: int


def backtracking_line_search(evaluate: Callable[[torch.Tensor], tuple[float, float]],
                             start: torch.Tensor, full_step: torch.Tensor, *,
                             objective_before: float, max_kl: float, ratio: float = 0.5,
                             max_tries: int = 15) -> tuple[torch.Tensor, LineSearchResult]:
    """Shrink the step until the objective (to maximize) improves and KL <= max_kl.

    evaluate(params) -> (objective, kl). Returns the accepted parameters, or `start`
    unchanged when no step in max_tries is acceptable.
    """
    for k in range(max_tries):
        fraction = ratio ** k
        candidate = start + fraction * full_step
        objective, kl = evaluate(candidate)
        if objective > objective_before and kl <= max_kl:
            return candidate, LineSearchResult(True, fraction, objective, kl, k + 1)
    return start, LineSearchResult(False, 0.0, objective_before, 0.0, max_tries)
