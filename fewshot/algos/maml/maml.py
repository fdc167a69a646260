"""MAML: adapt by policy-gradient steps; meta-train through the adaptation with TRPO or PPO.

The maths, as pure functions of explicit parameters:
- `inner_loss`: the policy-gradient surrogate -mean(log pi(a|s) A) on one task's episodes;
- `adapt`: theta'_k = theta - lr * grad inner_loss, once per inner step, second-order
  through `torch.autograd.grad(create_graph=True)` unless first-order;
- `outer_terms`: the meta-objective mean_k E[pi_theta'_k / pi_old'_k A] on the episodes
  sampled after adaptation, and the mean KL between old and new adapted policies.
`MAML` holds the meta-parameters (policy weights, and inner step sizes under Meta-SGD)
and takes one meta-update per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fewshot.algos.maml.config import MAMLConfig
from fewshot.collect import Batch
from fewshot.maths.optim import backtracking_line_search, conjugate_gradient
from fewshot.maths.returns import masked_mean
from fewshot.nn.policy import GaussianMLP, Params, distribution, kl_divergence, log_prob

INNER_LR_PREFIX = "inner_lr."


def inner_loss(policy: nn.Module, params: Mapping[str, torch.Tensor],
               episodes: Batch) -> torch.Tensor:
    """-mean over valid steps of log pi_params(a|s) * advantage."""
    mean, log_std = distribution(policy, params, episodes.obs_TNO)
    logp = log_prob(mean, log_std, episodes.act_TN)
    return -masked_mean(logp * episodes.adv_TN, episodes.valid_TN)


def adapt(policy: nn.Module, params: Mapping[str, torch.Tensor],
          inner_lrs: Mapping[str, torch.Tensor], steps: Sequence[Batch], *,
          first_order: bool, step_scales: Sequence[float] | None = None) -> Params:
    """Adapted parameters after one gradient step per entry of `steps` (one task's data).

    Second-order: the result stays differentiable in `params` and `inner_lrs` through the
    gradients. First-order: the gradients are taken as constants. `step_scales[i]`
    multiplies the step size of step i (default: 1 for every step).
    """
    scales = check_step_scales(step_scales, len(steps))
    params = dict(params)
    for episodes, scale in zip(steps, scales, strict=True):
        loss = inner_loss(policy, params, episodes)
        grads = torch.autograd.grad(loss, list(params.values()),
                                    create_graph=not first_order)
        params = {name: p - scale * inner_lrs[name] * g
                  for (name, p), g in zip(params.items(), grads, strict=True)}
    return params


def check_step_scales(step_scales: Sequence[float] | None, num_steps: int) -> list[float]:
    """`step_scales` as a list of `num_steps` finite non-negative floats (None: all 1)."""
    if step_scales is None:
        return [1.0] * num_steps
    scales = [float(s) for s in step_scales]
    if len(scales) < num_steps:
        raise ValueError(f"step_scales: {len(scales)} given for {num_steps} inner steps; "
                         "give one scale per step")
    if not all(math.isfinite(s) and s >= 0 for s in scales):
        raise ValueError(f"step_scales must be finite and >= 0, got {scales}")
    return scales[:num_steps]


@dataclass
class OuterTerms:
    surrogate: torch.Tensor  # mean over tasks of E[ratio * A]
    kl: torch.Tensor         # mean over tasks of E[KL(old adapted || new adapted)]
    clipped: torch.Tensor    # PPO's clipped surrogate (with clip = 0: the surrogate)
    outputs: list[torch.Tensor]  # each task's (mean, log_std): what the KL reads of theta


def outer_terms(policy: nn.Module, adapted: Sequence[Mapping[str, torch.Tensor]],
                post: Batch, old: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
                clip: float = 0.0) -> OuterTerms:
    """Meta-objective terms of the adapted policies on the post-adaptation episodes.

    `old[k]` is task k's (mean, log_std) before the update, for the KL; the ratio uses the
    log-probs stored when the episodes were sampled.
    """
    surrogates, kls, clipped, outputs = [], [], [], []
    for k, params in enumerate(adapted):
        episodes = post.task(k)
        mean, log_std = distribution(policy, params, episodes.obs_TNO)
        outputs += [mean, log_std]
        ratio = torch.exp(log_prob(mean, log_std, episodes.act_TN) - episodes.logp_TN)
        adv = episodes.adv_TN
        surrogates.append(masked_mean(ratio * adv, episodes.valid_TN))
        if clip > 0:
            bounded = torch.clamp(ratio, 1 - clip, 1 + clip) * adv
            clipped.append(masked_mean(torch.minimum(ratio * adv, bounded), episodes.valid_TN))
        if old is not None:
            kl = kl_divergence(old[k][0], old[k][1], mean, log_std)
            kls.append(masked_mean(kl, episodes.valid_TN))
    surrogate = torch.stack(surrogates).mean()
    return OuterTerms(surrogate=surrogate,
                      kl=torch.stack(kls).mean() if kls else torch.zeros(()),
                      clipped=torch.stack(clipped).mean() if clipped else surrogate,
                      outputs=outputs)


class MAML:
    """The MAML learner. `meta_update(pre, post)` takes the episodes of one meta-batch:
    pre[i] sampled before inner step i (pre[0] with the meta-parameters), post sampled
    with the fully adapted policies."""

    def __init__(self, *, policy: GaussianMLP, config: MAMLConfig) -> None:
        self.policy = policy
        self.config = config
        lrs = {name: torch.full_like(p, config.inner_lr) if config.learn_inner_lr
               else torch.tensor(config.inner_lr, dtype=p.dtype)
               for name, p in policy.named_parameters()}
        self.inner_lrs = nn.ParameterDict(
            {name.replace(".", "_"): nn.Parameter(lr) for name, lr in lrs.items()}
        ) if config.learn_inner_lr else None
        self._fixed_lrs = None if config.learn_inner_lr else lrs
        self.optimizer = (torch.optim.Adam(self.meta_parameters().values(), lr=config.outer_lr)
                          if config.outer == "ppo" else None)

    # Parameters -------------------------------------------------------------------

    def lrs(self) -> dict[str, torch.Tensor]:
        """Inner step size per policy parameter (learned or fixed)."""
        if self.inner_lrs is None:
            return self._fixed_lrs
        return {name: self.inner_lrs[name.replace(".", "_")]
                for name, _ in self.policy.named_parameters()}

    def meta_parameters(self) -> dict[str, nn.Parameter]:
        meta = dict(self.policy.named_parameters())
        if self.inner_lrs is not None:
            meta.update({INNER_LR_PREFIX + n: p for n, p in self.lrs().items()})
        return meta

    def _split(self, meta: Mapping[str, torch.Tensor]) -> tuple[Params, Params]:
        params = {n: t for n, t in meta.items() if not n.startswith(INNER_LR_PREFIX)}
        if self.inner_lrs is None:
            return params, self._fixed_lrs
        return params, {n: meta[INNER_LR_PREFIX + n] for n in params}

    # Adaptation -------------------------------------------------------------------

    def adapt_tasks(self, pre: Sequence[Batch], meta: Mapping[str, torch.Tensor] | None = None,
                    *, differentiable: bool = False,
                    step_scales: Sequence[float] | None = None) -> list[Params]:
        """Each task's adapted parameters from its episodes in `pre` (one Batch per step).

        Not differentiable (the default): detached values, for sampling and evaluation.
        `step_scales[i]` multiplies the step size of step i (an evaluation protocol may
        take smaller later steps; meta-training uses 1).
        """
        meta = self.meta_parameters() if meta is None else meta
        params, lrs = self._split(meta)
        adapted = []
        with torch.enable_grad():
            for k in range(pre[0].num_tasks):
                steps = [batch.task(k) for batch in pre]
                if differentiable:
                    out = adapt(self.policy, params, lrs, steps,
                                first_order=self.config.first_order, step_scales=step_scales)
                else:
                    start = {n: p.detach().requires_grad_(True) for n, p in params.items()}
                    out = {n: p.detach() for n, p in adapt(
                        self.policy, start, {n: lr.detach() for n, lr in lrs.items()},
                        steps, first_order=True, step_scales=step_scales).items()}
                adapted.append(out)
        return adapted

    # Meta-update ------------------------------------------------------------------

    def meta_update(self, pre: Sequence[Batch], post: Batch) -> dict[str, float]:
        if self.config.outer == "trpo":
            return self._trpo_update(pre, post)
        return self._ppo_update(pre, post)

    def old_distributions(self, pre: Sequence[Batch], post: Batch
                          ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each task's adapted (mean, log_std) on its post-adaptation observations, as
        constants: the 'old' side of the KL."""
        with torch.no_grad():
            return distributions_on(self.policy, self.adapt_tasks(pre), post)

    def _trpo_update(self, pre: Sequence[Batch], post: Batch) -> dict[str, float]:
        cfg = self.config
        meta = self.meta_parameters()
        names = list(meta)
        params = list(meta.values())
        theta = torch.nn.utils.parameters_to_vector(params).detach()
        adapted = self.adapt_tasks(pre, meta, differentiable=True)
        old = distributions_on(self.policy, adapted, post)
        before = outer_terms(self.policy, adapted, post, old)
        grad = flat(torch.autograd.grad(before.surrogate, params, retain_graph=True))
        fisher_vector = self._fisher_vector_product(pre, post, meta, adapted, old, before)
        solved = conjugate_gradient(fisher_vector, grad, cfg.cg_iterations)
        direction, curvature = solved.solution, solved.solution @ solved.product
        full_step = torch.sqrt(2 * cfg.max_kl / curvature.clamp_min(1e-12)) * direction

        def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
            with torch.no_grad():
                moved = self.adapt_tasks(pre, unflatten(candidate, meta, names))
                terms = outer_terms(self.policy, moved, post, old)
            return float(terms.surrogate), float(terms.kl)

        new_theta, search = backtracking_line_search(
            evaluate, theta, full_step, objective_before=float(before.surrogate.detach()),
            max_kl=cfg.max_kl, ratio=cfg.line_search_ratio, max_tries=cfg.line_search_steps)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(new_theta, params)
        return {"surrogate_before": float(before.surrogate.detach()),
                "surrogate_after": search.objective, "kl": search.kl,
                "step_accepted": float(search.accepted), "step_fraction": search.step_fraction,
                "line_search_tries": float(search.tries)}

    def _fisher_vector_product(self, pre: Sequence[Batch], post: Batch,
                               meta: Mapping[str, torch.Tensor], adapted: Sequence[Params],
                               old: Sequence[tuple[torch.Tensor, torch.Tensor]],
                               before: OuterTerms) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> (H + damping I) v for the conjugate gradient (`kl_hessian_vector_product`,
        through the adapted policies' distributions on the post-adaptation episodes).

        With `fisher_subsample` n > 1, H is estimated on every n-th episode of each task:
        the adaptation is differentiated on those episodes' inner loss and the Fisher
        taken on those post-adaptation episodes, both at the adapted parameters of all
        episodes (their values are moved there; their derivatives stay the subsample's).
        """
        n, terms = self.config.fisher_subsample, before
        if n > 1:
            pre = [batch.every_nth_trial(n) for batch in pre]
            post = post.every_nth_trial(n)
            subsampled = self.adapt_tasks(pre, meta, differentiable=True)
            adapted = [{name: t + (full[name] - t).detach() for name, t in sub.items()}
                       for sub, full in zip(subsampled, adapted, strict=True)]
            old = [(mean[:, ::n], log_std) for mean, log_std in old]
            terms = outer_terms(self.policy, adapted, post, old)
        return kl_hessian_vector_product(terms.kl, terms.outputs, list(meta.values()),
                                         self.config.cg_damping)

    def _ppo_update(self, pre: Sequence[Batch], post: Batch) -> dict[str, float]:
        cfg = self.config
        old = self.old_distributions(pre, post)
        first = last = None
        for _ in range(cfg.ppo_epochs):
            adapted = self.adapt_tasks(pre, differentiable=True)
            terms = outer_terms(self.policy, adapted, post, old, clip=cfg.ppo_clip)
            self.optimizer.zero_grad()
            (-terms.clipped).backward()
            self.optimizer.step()
            first = terms if first is None else first
            last = terms
        return {"surrogate_before": float(first.surrogate.detach()),
                "surrogate_after": float(last.surrogate.detach()), "kl": float(last.kl.detach())}

    # Checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(),
                "inner_lrs": None if self.inner_lrs is None else self.inner_lrs.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.inner_lrs is not None:
            self.inner_lrs.load_state_dict(state["inner_lrs"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def distributions_on(policy: nn.Module, adapted: Sequence[Mapping[str, torch.Tensor]],
                     post: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Task k's (mean, log_std) under adapted[k] on its post-adaptation observations,
    detached: the 'old' side of the KL."""
    return [tuple(t.detach() for t in distribution(policy, params, post.task(k).obs_TNO))
            for k, params in enumerate(adapted)]


def kl_hessian_vector_product(kl: torch.Tensor, through: Sequence[torch.Tensor],
                              params: Sequence[torch.Tensor], damping: float
                              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> (H + damping I) v, H the Hessian of the mean KL in the meta-parameters, taken
    where the new adapted policies equal the old ones (as TRPO does).

    `through`: tensors through which the KL depends on the meta-parameters, at which its
    gradient is zero: the adapted policies' distributions (means and log-stds) on the
    post-adaptation steps, or the adapted parameters themselves. With y = y(theta) those
    tensors and J = dy/d theta,
        H = J^T H_y J + sum_i (dKL/dy_i) d^2 y_i/d theta^2,
    where H_y is the KL's Hessian in y. At old == new the KL is at its minimum, so
    dKL/dy = 0 and H = J^T H_y J exactly. Computing it that way needs only second
    derivatives through the adaptation, where differentiating the KL's gradient in theta
    would need third (1.56x faster, benchmarks/meta_gradient.py); taking y the
    distributions rather than the adapted parameters makes H_y elementwise (the Gaussian's
    Fisher in its mean and log-std) instead of a Hessian through the network. J v comes
    from the double-backward trick (J^T z is linear in z, so d/dz (J^T z . v) = J v).
    """
    ys = list(through)
    probes = [torch.zeros_like(t, requires_grad=True) for t in ys]
    transposed = torch.autograd.grad(ys, params, grad_outputs=probes, create_graph=True,
                                     allow_unused=True, materialize_grads=True)
    kl_grad = torch.autograd.grad(kl, ys, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        jv = torch.autograd.grad(flat(transposed) @ v, probes, retain_graph=True,
                                 allow_unused=True, materialize_grads=True)
        h_jv = torch.autograd.grad(flat(kl_grad) @ flat(jv), ys, retain_graph=True,
                                   allow_unused=True, materialize_grads=True)
        jt_h_jv = torch.autograd.grad(ys, params, grad_outputs=h_jv, retain_graph=True,
                                      allow_unused=True, materialize_grads=True)
        return flat(jt_h_jv) + damping * v

    return product


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor],
              names: Sequence[str]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name in names:
        n = like[name].numel()
        out[name] = vector[start:start + n].view_as(like[name])
        start += n
    return out
