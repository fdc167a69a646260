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
    """A copy of `batch` with adv_TN filled in (normalised per task if asked)."""
    columns = []
    for k in range(batch.num_tasks):
        task = batch.task(k)
        valid = task.valid_TN
        rew = task.rew_TN.double()
        features = baseline_features(task.obs_TNO.double())
        weights = fit_linear_baseline(features, discounted_returns(rew, valid, gamma), valid)
        value = predict_baseline(features, weights, valid)
        adv = gae(rew, value, valid, gamma, gae_lambda)
        if normalize_advantages:
            adv = normalize(adv, valid)
        columns.append(adv.to(batch.rew_TN.dtype))
    return replace(batch, adv_TN=torch.cat(columns, dim=1))
