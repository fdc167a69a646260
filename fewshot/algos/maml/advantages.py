"""From a sampled Batch to advantages: per task, fit the linear baseline, then GAE.

The baseline is fitted on each task's own episodes of that adaptation step, before its
advantages are computed, as in the MAML and ProMP code.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from fewshot.collect import Batch
from fewshot.maths.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    normalize,
    predict_baseline,
)


def with_advantages(batch: Batch, *, gamma: float, gae_lambda: float,
                    normalize_advantages: bool) -> Batch:
    """A copy of `batch` with adv_TN filled in (normalised per task if asked).

    Returns and GAE treat each column alone, so they run over all tasks at once; only
    the baseline's fit and the normalisation look at a task's columns together.
    """
    valid = batch.valid_TN
    rew = batch.rew_TN.double()
    returns = discounted_returns(rew, valid, gamma)
    J = batch.trials_per_task
    tasks = [slice(k * J, (k + 1) * J) for k in range(batch.num_tasks)]
    value = torch.cat([task_baseline(batch.obs_TNO[:, cols], returns[:, cols], valid[:, cols])
                       for cols in tasks], dim=1)
    adv = gae(rew, value, valid, gamma, gae_lambda)
    if normalize_advantages:
        adv = torch.cat([normalize(adv[:, cols], valid[:, cols]) for cols in tasks], dim=1)
    return replace(batch, adv_TN=adv.to(batch.rew_TN.dtype))


def task_baseline(obs_TNO: torch.Tensor, ret_TN: torch.Tensor,
                  valid_TN: torch.Tensor) -> torch.Tensor:
    """One task's linear baseline, fitted on its own episodes, as values [T, N]."""
    features = baseline_features(obs_TNO.double())
    return predict_baseline(features, fit_linear_baseline(features, ret_TN, valid_TN), valid_TN)
