"""Tests for the MAML maths: Gaussian policy, meta-gradients, CG, line search, TRPO and PPO."""

from __future__ import annotations

from dataclasses import replace

import higher
import pytest
import torch

import fewshot.algos.maml.maml as maml_module
from fewshot.algos.maml.advantages import with_advantages
from fewshot.algos.maml.config import MAMLConfig
from fewshot.algos.maml.maml import MAML, adapt, flat, kl_hessian_vector_product, outer_terms
from fewshot.collect import Batch
from fewshot.maths.optim import (
    ConjugateGradientResult,
    backtracking_line_search,
    conjugate_gradient,
)
from fewshot.maths.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    masked_mean,
    normalize,
    predict_baseline,
)
from fewshot.nn.policy import GaussianMLP, distribution, kl_divergence, log_prob

F64 = torch.float64
ALPHA = 0.3


def make_policy(seed: int, obs: int = 3, act: int = 2, hidden: tuple[int, ...] = (8,),
                init_log_std: float = -0.2) -> GaussianMLP:
    torch.manual_seed(seed)
    return GaussianMLP(obs_size=obs, action_size=act, hidden_sizes=hidden,
                       init_log_std=init_log_std).double()


def make_batch(seed: int, *, K: int = 2, E: int = 3, T: int = 5, obs: int = 3, act: int = 2,
               policy: GaussianMLP | None = None, params: list | None = None) -> Batch:
    """Random episodes of random lengths; with `policy` and per-task `params`, actions are
    sampled from those policies and logp_TN holds their log-probs (else both are random)."""
    gen = torch.Generator().manual_seed(seed)
    N = K * E
    obs_TNO = torch.randn(T, N, obs, generator=gen, dtype=F64)
    lengths = torch.randint(2, T + 1, (N,), generator=gen)
    lengths[0] = T
    valid_TN = torch.arange(T)[:, None] < lengths[None, :]
    last_TN = torch.arange(T)[:, None] == (lengths - 1)[None, :]
    if policy is None:
        act_TNA = torch.randn(T, N, act, generator=gen, dtype=F64)
        logp_TN = -2.0 + 0.3 * torch.randn(T, N, generator=gen, dtype=F64)
    else:
        acts, logps = [], []
        with torch.no_grad():
            for k in range(K):
                mean, log_std = distribution(policy, params[k], obs_TNO[:, k * E:(k + 1) * E])
                noise = torch.randn(mean.shape, generator=gen, dtype=F64)
                a = mean + log_std.exp() * noise
                acts.append(a)
                logps.append(log_prob(mean, log_std, a))
        act_TNA, logp_TN = torch.cat(acts, 1), torch.cat(logps, 1)
    return Batch(obs_TNO=obs_TNO, act_TN=act_TNA,
                 rew_TN=torch.randn(T, N, generator=gen, dtype=F64) * valid_TN,
                 logp_TN=logp_TN, terminated_TN=last_TN & (lengths < T)[None, :],
                 truncated_TN=last_TN & (lengths == T)[None, :], valid_TN=valid_TN,
                 diverged_TN=torch.zeros(T, N, dtype=torch.bool),
                 episode_TN=torch.zeros(T, N, dtype=torch.long), outcomes={}, extras={},
                 tasks=[object() for _ in range(K)], trials_per_task=E, episodes_per_trial=1,
                 adv_TN=torch.randn(T, N, generator=gen, dtype=F64) * valid_TN)


def fixed_lrs(policy: GaussianMLP, alpha: float = ALPHA) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(alpha, dtype=F64) for name, _ in policy.named_parameters()}


def outer_loss(policy, adapted, post: Batch) -> torch.Tensor:
    """Mean over tasks of -masked_mean(ratio * adv) on the post-adaptation episodes."""
    losses = []
    for k, params in enumerate(adapted):
        episodes = post.task(k)
        mean, log_std = distribution(policy, params, episodes.obs_TNO)
        ratio = torch.exp(log_prob(mean, log_std, episodes.act_TN) - episodes.logp_TN)
        losses.append(-masked_mean(ratio * episodes.adv_TN, episodes.valid_TN))
    return torch.stack(losses).mean()


def our_meta_gradient(policy, pre: list[Batch], post: Batch, *, first_order: bool,
                      alpha: float = ALPHA) -> list[torch.Tensor]:
    lrs = fixed_lrs(policy, alpha)
    adapted = [adapt(policy, policy.params(), lrs, [b.task(k) for b in pre],
                     first_order=first_order) for k in range(post.num_tasks)]
    return list(torch.autograd.grad(outer_loss(policy, adapted, post), list(policy.parameters())))


# Reference path through `higher`, using no fewshot maths (only the Batch's tensors).

def _columns(batch: Batch, k: int):
    cols = slice(k * batch.trials_per_task, (k + 1) * batch.trials_per_task)
    valid = batch.valid_TN[:, cols].to(F64)
    return (batch.obs_TNO[:, cols], batch.act_TN[:, cols], batch.logp_TN[:, cols],
            batch.adv_TN[:, cols], valid)


def _reference_logp(fmodel, obs, act):
    mean, log_std = fmodel(obs)
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(act).sum(-1)


def higher_meta_gradient(policy, pre: list[Batch], post: Batch,
                         alpha: float = ALPHA) -> list[torch.Tensor]:
    policy.zero_grad(set_to_none=True)
    K = post.num_tasks
    for k in range(K):
        inner_opt = torch.optim.SGD(policy.parameters(), lr=alpha)
        with higher.innerloop_ctx(policy, inner_opt, copy_initial_weights=False) as (fmodel,
                                                                                      diffopt):
            for batch in pre:
                obs, act, _, adv, valid = _columns(batch, k)
                logp = _reference_logp(fmodel, obs, act)
                diffopt.step(-(logp * adv * valid).sum() / valid.sum())
            obs, act, logp_old, adv, valid = _columns(post, k)
            ratio = torch.exp(_reference_logp(fmodel, obs, act) - logp_old)
            (-(ratio * adv * valid).sum() / valid.sum() / K).backward()
    grads = [p.grad.clone() for p in policy.parameters()]
    policy.zero_grad(set_to_none=True)
    return grads


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _snapshot(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


# Policy maths ---------------------------------------------------------------------------

def test_log_prob_matches_torch_normal_summed_over_action_dims():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 5, 3, generator=gen, dtype=F64)
    log_std = 0.5 * torch.randn(3, generator=gen, dtype=F64)
    act = torch.randn(4, 5, 3, generator=gen, dtype=F64)
    want = torch.distributions.Normal(mean, log_std.exp()).log_prob(act).sum(-1)
    torch.testing.assert_close(log_prob(mean, log_std, act), want, rtol=1e-12, atol=1e-12)


def test_kl_divergence_matches_torch_distributions_summed_over_action_dims():
    gen = torch.Generator().manual_seed(1)
    mean_old, mean = (torch.randn(6, 3, generator=gen, dtype=F64) for _ in range(2))
    log_std_old, log_std = (0.5 * torch.randn(6, 3, generator=gen, dtype=F64) for _ in range(2))
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean_old, log_std_old.exp()),
        torch.distributions.Normal(mean, log_std.exp())).sum(-1)
    got = kl_divergence(mean_old, log_std_old, mean, log_std)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl_divergence(mean, log_std, mean, log_std),
                               torch.zeros(6, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sizes", [dict(obs_size=0, action_size=2),
                                   dict(obs_size=3, action_size=0),
                                   dict(obs_size=3, action_size=2, hidden_sizes=(8, 0)),
                                   dict(obs_size=-1, action_size=2)])
def test_gaussian_mlp_rejects_non_positive_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        GaussianMLP(**sizes)


def test_gaussian_mlp_uses_the_chosen_hidden_activation():
    torch.manual_seed(0)
    relu = GaussianMLP(obs_size=3, action_size=2, hidden_sizes=(8,), activation="relu")
    obs = torch.randn(5, 3)
    hidden = torch.relu(relu.mean[0](obs))
    torch.testing.assert_close(relu(obs)[0], relu.mean[2](hidden))
    tanh = GaussianMLP(obs_size=3, action_size=2, hidden_sizes=(8,))
    torch.testing.assert_close(tanh(obs)[0], tanh.mean[2](torch.tanh(tanh.mean[0](obs))))
    with pytest.raises(ValueError, match="activation must be one of"):
        GaussianMLP(obs_size=3, action_size=2, activation="sigmoid")


def test_distribution_direct_path_equals_functional_call_bit_for_bit():
    """GaussianMLP.run (what distribution() takes for a GaussianMLP) gives functional_call's
    values and gradients exactly, with a partial parameter dict and under vmap."""
    policy = make_policy(0, hidden=(8, 8))
    other = {name: p.detach() + 0.1 * torch.randn_like(p) for name, p in policy.params().items()}
    other = {name: p.requires_grad_() for name, p in other.items()}
    obs = torch.randn(7, 3, dtype=F64)
    for params in (other, {"mean.2.weight": other["mean.2.weight"]}, {}):
        direct = policy.run(params, obs)
        reference = torch.func.functional_call(policy, dict(params), (obs,))
        for a, b in zip(direct, reference, strict=True):
            assert torch.equal(a, b)
    mean, log_std = distribution(policy, other, obs)
    grads = torch.autograd.grad(mean.square().sum() + log_std.sum(), list(other.values()))
    mean, log_std = torch.func.functional_call(policy, other, (obs,))
    reference = torch.autograd.grad(mean.square().sum() + log_std.sum(), list(other.values()))
    for a, b in zip(grads, reference, strict=True):
        assert torch.equal(a, b)
    stacked = {name: torch.stack([p.detach(), p.detach() * 2]) for name, p in other.items()}
    direct = torch.func.vmap(lambda p, o: distribution(policy, p, o))(stacked,
                                                                     obs.expand(2, -1, -1))
    reference = torch.func.vmap(lambda p, o: torch.func.functional_call(policy, p, (o,)))(
        stacked, obs.expand(2, -1, -1))
    for a, b in zip(direct, reference, strict=True):
        assert torch.equal(a, b)


# Meta-gradients ---------------------------------------------------------------------------

@pytest.mark.parametrize("inner_steps", [1, 2])
def test_second_order_meta_gradient_matches_higher(inner_steps):
    policy = make_policy(10)
    pre = [make_batch(100 + i) for i in range(inner_steps)]
    post = make_batch(200)
    ours = our_meta_gradient(policy, pre, post, first_order=False)
    before = _snapshot(policy)
    theirs = higher_meta_gradient(policy, pre, post)
    for name, p in policy.named_parameters():
        assert torch.equal(p, before[name])
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_second_order_meta_gradient_matches_central_finite_differences(inner_steps):
    policy = make_policy(11, obs=2, act=1, hidden=(3,))
    pre = [make_batch(110 + i, obs=2, act=1, T=4, E=2) for i in range(inner_steps)]
    post = make_batch(120, obs=2, act=1, T=4, E=2)
    theta = _flat(policy.parameters()).detach()
    lrs = fixed_lrs(policy)

    def objective(vector: torch.Tensor) -> float:
        params, start = {}, 0
        for name, p in policy.named_parameters():
            params[name] = vector[start:start + p.numel()].view_as(p).clone().requires_grad_()
            start += p.numel()
        adapted = [adapt(policy, params, lrs, [b.task(k) for b in pre], first_order=True)
                   for k in range(post.num_tasks)]
        return float(outer_loss(policy, adapted, post).detach())

    analytic = _flat(our_meta_gradient(policy, pre, post, first_order=False))
    eps = 1e-6
    numeric = torch.zeros_like(theta)
    for i in range(theta.numel()):
        step = torch.zeros_like(theta)
        step[i] = eps
        numeric[i] = (objective(theta + step) - objective(theta - step)) / (2 * eps)
    scale = float(analytic.abs().max())
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_first_order_meta_gradient_is_the_outer_gradient_at_the_adapted_params(inner_steps):
    policy = make_policy(12)
    pre = [make_batch(130 + i) for i in range(inner_steps)]
    post = make_batch(140)
    first = our_meta_gradient(policy, pre, post, first_order=True)

    # FOMAML by hand: inner gradients are constants, so d theta'/d theta is the identity
    adapted_leaves = []
    for k in range(post.num_tasks):
        params = {n: p.detach().clone() for n, p in policy.named_parameters()}
        for batch in pre:
            params = {n: p.requires_grad_() for n, p in params.items()}
            obs, act, _, adv, valid = _columns(batch, k)
            mean, log_std = distribution(policy, params, obs)
            loss = -(log_prob(mean, log_std, act) * adv * valid).sum() / valid.sum()
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {n: (p - ALPHA * g).detach() for (n, p), g in zip(params.items(), grads,
                                                                       strict=True)}
        adapted_leaves.append({n: p.requires_grad_() for n, p in params.items()})
    names = [n for n, _ in policy.named_parameters()]
    leaf_grads = torch.autograd.grad(outer_loss(policy, adapted_leaves, post),
                                     [leaves[n] for leaves in adapted_leaves for n in names])
    per_task = [leaf_grads[k * len(names):(k + 1) * len(names)] for k in range(post.num_tasks)]
    manual = [sum(grads) for grads in zip(*per_task, strict=True)]
    for g_ours, g_manual in zip(first, manual, strict=True):
        torch.testing.assert_close(g_ours, g_manual, rtol=1e-10, atol=1e-12)

    second = our_meta_gradient(policy, pre, post, first_order=False)
    assert float((_flat(first) - _flat(second)).abs().max()) > 1e-3


@pytest.mark.parametrize("learn_inner_lr", [False, True])
def test_adapt_tasks_never_changes_the_meta_parameters(learn_inner_lr):
    policy = make_policy(13)
    learner = MAML(policy=policy, config=MAMLConfig(learn_inner_lr=learn_inner_lr,
                                                     num_inner_steps=2))
    pre = [make_batch(150), make_batch(151)]
    before = {n: p.detach().clone() for n, p in learner.meta_parameters().items()}
    for differentiable in (True, False):
        adapted = learner.adapt_tasks(pre, differentiable=differentiable)
        assert len(adapted) == 2
        for n, p in learner.meta_parameters().items():
            assert torch.equal(p, before[n]), n
        for params in adapted:
            assert set(params) == {n for n, _ in policy.named_parameters()}
            assert any(not torch.equal(params[n], before[n]) for n in params)
            assert all(t.requires_grad == differentiable for t in params.values())
    if not learn_inner_lr:
        differentiable = learner.adapt_tasks(pre, differentiable=True)
        detached = learner.adapt_tasks(pre)
        for a, b in zip(differentiable, detached, strict=True):
            for n in a:
                torch.testing.assert_close(a[n].detach(), b[n], rtol=0, atol=1e-12)


def test_step_scales_multiply_each_inner_step_size():
    policy = make_policy(16)
    pre = [make_batch(152), make_batch(153)]
    steps = [b.task(0) for b in pre]
    scaled = adapt(policy, policy.params(), fixed_lrs(policy), steps, first_order=True,
                   step_scales=[1.0, 0.5])
    # By hand: a step at ALPHA, then a step at ALPHA / 2 from where the first one ended.
    first = adapt(policy, policy.params(), fixed_lrs(policy), steps[:1], first_order=True)
    by_hand = adapt(policy, first, fixed_lrs(policy, ALPHA / 2), steps[1:], first_order=True)
    unscaled = adapt(policy, policy.params(), fixed_lrs(policy), steps, first_order=True)
    for n in scaled:
        torch.testing.assert_close(scaled[n], by_hand[n], rtol=1e-12, atol=1e-12)
    assert any(not torch.allclose(scaled[n], unscaled[n]) for n in scaled)

    learner = MAML(policy=policy, config=MAMLConfig(inner_lr=ALPHA, num_inner_steps=2))
    via_learner = learner.adapt_tasks(pre, step_scales=[1.0, 0.5])[0]
    for n in scaled:
        torch.testing.assert_close(via_learner[n], scaled[n].detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scales, message", [([1.0], "1 given for 2 inner steps"),
                                             ([1.0, -0.5], "finite and >= 0"),
                                             ([1.0, float("nan")], "finite and >= 0")])
def test_step_scales_reject_bad_values(scales, message):
    policy = make_policy(17)
    steps = [make_batch(154).task(0), make_batch(155).task(0)]
    with pytest.raises(ValueError, match=message):
        adapt(policy, policy.params(), fixed_lrs(policy), steps, first_order=True,
              step_scales=scales)


def test_meta_sgd_inner_lr_gradient_matches_the_hand_formula():
    policy = make_policy(14)
    learner = MAML(policy=policy, config=MAMLConfig(learn_inner_lr=True, inner_lr=0.1))
    names = [n for n, _ in policy.named_parameters()]
    meta = learner.meta_parameters()
    assert set(meta) == set(names) | {"inner_lr." + n for n in names}
    lrs = learner.lrs()
    for n, p in policy.named_parameters():
        assert meta["inner_lr." + n] is lrs[n]
        assert lrs[n].shape == p.shape and lrs[n].requires_grad
        assert torch.all(lrs[n] == 0.1)
    gen = torch.Generator().manual_seed(15)
    with torch.no_grad():  # make the per-entry step sizes differ
        for lr in lrs.values():
            lr.mul_(1 + torch.rand(lr.shape, generator=gen, dtype=lr.dtype))

    pre, post = make_batch(160), make_batch(161)
    adapted = learner.adapt_tasks([pre], differentiable=True)
    lr_grads = torch.autograd.grad(outer_loss(policy, adapted, post), [lrs[n] for n in names])

    # theta'_k = theta - lr * g_k, so dL/dlr = sum_k -g_k * dL/dtheta'_k
    theta = {n: p.detach().clone().requires_grad_() for n, p in policy.named_parameters()}
    leaves, inner_grads = [], []
    for k in range(post.num_tasks):
        obs, act, _, adv, valid = _columns(pre, k)
        mean, log_std = distribution(policy, theta, obs)
        loss = -(log_prob(mean, log_std, act) * adv * valid).sum() / valid.sum()
        g = dict(zip(names, torch.autograd.grad(loss, [theta[n] for n in names]), strict=True))
        inner_grads.append(g)
        leaves.append({n: (theta[n] - lrs[n].detach() * g[n]).detach().requires_grad_()
                       for n in names})
    loss = outer_loss(policy, leaves, post)
    outer = [dict(zip(names, torch.autograd.grad(loss, [leaf[n] for n in names],
                                                 retain_graph=True), strict=True))
             for leaf in leaves]
    for n, got in zip(names, lr_grads, strict=True):
        want = sum(-inner_grads[k][n] * outer[k][n] for k in range(post.num_tasks))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)


# Conjugate gradient and line search -------------------------------------------------------

def test_conjugate_gradient_solves_a_spd_system():
    gen = torch.Generator().manual_seed(20)
    M = torch.randn(10, 10, generator=gen, dtype=F64)
    A = M @ M.T + torch.eye(10, dtype=F64)
    b = torch.randn(10, generator=gen, dtype=F64)
    want = torch.linalg.solve(A, b)
    solved = conjugate_gradient(lambda v: A @ v, b, iterations=20)
    torch.testing.assert_close(solved.solution, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(solved.product, A @ solved.solution, rtol=0, atol=1e-9)
    x10 = conjugate_gradient(lambda v: A @ v, b, iterations=10, tolerance=1e-20).solution
    torch.testing.assert_close(x10, want, rtol=0, atol=1e-6)


def test_conjugate_gradient_product_comes_from_the_residual_after_few_iterations():
    """Stopped early, A x is still b - r: the step's curvature x.Ax needs no extra
    product with A."""
    gen = torch.Generator().manual_seed(21)
    M = torch.randn(30, 30, generator=gen, dtype=F64)
    A = M @ M.T + 0.1 * torch.eye(30, dtype=F64)
    b = torch.randn(30, generator=gen, dtype=F64)
    calls = []
    solved = conjugate_gradient(lambda v: calls.append(v) or A @ v, b, iterations=4)
    assert len(calls) == 4
    torch.testing.assert_close(solved.product, A @ solved.solution, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(solved.solution, torch.linalg.solve(A, b), atol=1e-3)


def test_backtracking_line_search_returns_the_first_acceptable_step():
    start, full_step = torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([4.0, -8.0], dtype=F64)
    tried = []

    def evaluate(candidate):
        fraction = float((candidate - start)[0] / full_step[0])
        tried.append(fraction)
        # improves only for fraction <= 0.5; KL small enough only for fraction <= 0.25
        objective = 1.0 + (1.0 if fraction <= 0.5 else -1.0)
        return objective, fraction / 10.0

    params, result = backtracking_line_search(evaluate, start, full_step, objective_before=1.0,
                                              max_kl=0.025, ratio=0.5, max_tries=10)
    assert tried == [1.0, 0.5, 0.25]
    torch.testing.assert_close(params, start + 0.25 * full_step, rtol=0, atol=0)
    assert result.accepted and result.step_fraction == 0.25 and result.tries == 3
    assert result.objective == 2.0 and result.kl == 0.025


def test_backtracking_line_search_rejects_when_no_step_is_acceptable():
    start, full_step = torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([4.0, -8.0], dtype=F64)
    calls = []

    def evaluate(candidate):
        calls.append(candidate)
        return 1.0, 0.0  # never strictly better than objective_before

    params, result = backtracking_line_search(evaluate, start, full_step, objective_before=1.0,
                                              max_kl=0.01, max_tries=4)
    assert len(calls) == 4
    assert torch.equal(params, start)
    assert not result.accepted and result.step_fraction == 0.0 and result.tries == 4
    assert result.objective == 1.0


# Outer optimisers ------------------------------------------------------------------------

def _outer_problem(seed: int, learner: MAML):
    """pre sampled from the meta-policy, post from the adapted ones: every ratio starts at 1."""
    policy = learner.policy
    meta = {n: p.detach() for n, p in policy.named_parameters()}
    pre = make_batch(seed, policy=policy, params=[meta, meta], T=6, E=4)
    adapted = learner.adapt_tasks([pre])
    post = make_batch(seed + 1, policy=policy, params=adapted, T=6, E=4)
    return pre, post, adapted


def _mean_kl(policy, old_adapted, new_adapted, post: Batch) -> float:
    kls = []
    for k, (old, new) in enumerate(zip(old_adapted, new_adapted, strict=True)):
        obs, _, _, _, valid = _columns(post, k)
        with torch.no_grad():
            mean_old, log_std_old = distribution(policy, old, obs)
            mean_new, log_std_new = distribution(policy, new, obs)
        kl = torch.distributions.kl_divergence(
            torch.distributions.Normal(mean_old, log_std_old.exp().expand_as(mean_old)),
            torch.distributions.Normal(mean_new, log_std_new.exp().expand_as(mean_new))).sum(-1)
        kls.append(float((kl * valid).sum() / valid.sum()))
    return sum(kls) / len(kls)


def _surrogate(policy, adapted, post: Batch) -> float:
    with torch.no_grad():
        return -float(outer_loss(policy, adapted, post))


def test_trpo_meta_update_improves_the_surrogate_within_the_kl_bound():
    policy = make_policy(30)
    learner = MAML(policy=policy, config=MAMLConfig(outer="trpo", max_kl=0.01))
    pre, post, old_adapted = _outer_problem(300, learner)
    before = _snapshot(policy)
    surrogate_before = _surrogate(policy, old_adapted, post)
    torch.testing.assert_close(surrogate_before, float(sum(
        masked_mean(post.task(k).adv_TN, post.task(k).valid_TN) for k in range(2)) / 2),
        rtol=0, atol=1e-12)

    stats = learner.meta_update([pre], post)

    # on this problem the full natural-gradient step is accepted and fills the trust region
    assert stats["step_accepted"] == 1.0 and stats["step_fraction"] == 1.0
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())
    new_adapted = learner.adapt_tasks([pre])
    kl = _mean_kl(policy, old_adapted, new_adapted, post)
    surrogate_after = _surrogate(policy, new_adapted, post)
    assert 0.9 * 0.01 <= kl <= 0.01 + 1e-9
    assert surrogate_after > surrogate_before
    assert stats["kl"] == pytest.approx(kl, abs=1e-9)
    assert stats["surrogate_after"] == pytest.approx(surrogate_after, abs=1e-9)
    assert stats["surrogate_before"] == pytest.approx(surrogate_before, abs=1e-9)


def test_trpo_uses_the_surrogate_gradient_and_the_kl_hessian_through_adaptation(monkeypatch):
    policy = make_policy(33, obs=2, act=1, hidden=(4,))
    theta = _flat(policy.parameters()).detach().clone()
    gen = torch.Generator().manual_seed(332)
    probes = [torch.randn(theta.shape, generator=gen, dtype=F64) for _ in range(3)]
    captured = {}

    def capture(matvec, b, iterations=10, tolerance=1e-10):
        captured.update(b=b.detach().clone(), products=[matvec(v).detach() for v in probes])
        return conjugate_gradient(matvec, b, iterations, tolerance)

    monkeypatch.setattr(maml_module, "conjugate_gradient", capture)
    config = MAMLConfig(outer="trpo", max_kl=0.01)
    learner = MAML(policy=policy, config=config)
    pre = make_batch(330, policy=policy, params=[policy.params()] * 2, obs=2, act=1)
    old_adapted = learner.adapt_tasks([pre])
    post = make_batch(331, policy=policy, params=old_adapted, obs=2, act=1)
    lrs = learner.lrs()

    def adapted_at(vector: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        params, start = {}, 0
        for name, p in policy.named_parameters():
            params[name] = vector[start:start + p.numel()].view_as(p)
            start += p.numel()
        return [adapt(policy, params, lrs, [pre.task(k)], first_order=False) for k in range(2)]

    def kl_gradient(vector: torch.Tensor) -> torch.Tensor:
        vector = vector.clone().requires_grad_()
        kls = []
        for k, (old, new) in enumerate(zip(old_adapted, adapted_at(vector), strict=True)):
            obs, _, _, _, valid = _columns(post, k)
            mean_old, log_std_old = distribution(policy, old, obs)
            mean, log_std = distribution(policy, new, obs)
            kl = torch.distributions.kl_divergence(
                torch.distributions.Normal(mean_old, log_std_old.exp().expand_as(mean_old)),
                torch.distributions.Normal(mean, log_std.exp().expand_as(mean))).sum(-1)
            kls.append((kl * valid).sum() / valid.sum())
        return torch.autograd.grad(torch.stack(kls).mean(), vector)[0]

    learner.meta_update([pre], post)

    leaf = theta.clone().requires_grad_()
    surrogate_grad = -torch.autograd.grad(outer_loss(policy, adapted_at(leaf), post), leaf)[0]
    torch.testing.assert_close(captured["b"], surrogate_grad, rtol=1e-9, atol=1e-12)
    eps = 1e-5
    for v, product in zip(probes, captured["products"], strict=True):
        # Hessian-vector product of the mean KL by central differences of its gradient
        hv = (kl_gradient(theta + eps * v) - kl_gradient(theta - eps * v)) / (2 * eps)
        got = product - config.cg_damping * v
        torch.testing.assert_close(got, hv, rtol=1e-6, atol=1e-7 * float(hv.abs().max()))


@pytest.mark.parametrize("through", ["adapted", "distributions"])
@pytest.mark.parametrize(("inner_steps", "learn_inner_lr"), [(1, False), (2, False),
                                                           (1, True), (2, True)])
def test_kl_hessian_vector_product_equals_the_direct_hessian(inner_steps, learn_inner_lr,
                                                            through):
    # J^T H' J (second order) against differentiating the KL's gradient in the
    # meta-parameters (third order), where the new adapted policies equal the old ones.
    policy = make_policy(34, obs=2, act=1, hidden=(4,))
    learner = MAML(policy=policy, config=MAMLConfig(inner_lr=ALPHA, learn_inner_lr=learn_inner_lr))
    if learn_inner_lr:
        learner.inner_lrs.double()
    pre = [make_batch(340 + i, policy=policy, params=[policy.params()] * 2, obs=2, act=1)
           for i in range(inner_steps)]
    post = make_batch(349, policy=policy, params=learner.adapt_tasks(pre), obs=2, act=1)
    old = learner.old_distributions(pre, post)
    meta = learner.meta_parameters()
    params = list(meta.values())
    adapted = learner.adapt_tasks(pre, meta, differentiable=True)
    terms = outer_terms(policy, adapted, post, old)
    kl = terms.kl
    ys = ([t for p in adapted for t in p.values()] if through == "adapted"
          else terms.outputs)
    product = kl_hessian_vector_product(kl, ys, params, damping=0.0)
    kl_grad = flat(torch.autograd.grad(kl, params, create_graph=True))
    gen = torch.Generator().manual_seed(341)
    for _ in range(3):
        v = torch.randn(kl_grad.shape, generator=gen, dtype=F64)
        direct = flat(torch.autograd.grad(kl_grad @ v, params, retain_graph=True))
        torch.testing.assert_close(product(v), direct, rtol=1e-9, atol=1e-12)
    assert float(product(v) @ v) > 0  # a Fisher matrix: positive on a random direction
    torch.testing.assert_close(kl_hessian_vector_product(kl, ys, params, damping=0.5)(v),
        product(v) + 0.5 * v, rtol=1e-12, atol=1e-12)


def test_trpo_meta_update_leaves_parameters_unchanged_when_the_step_is_rejected(monkeypatch):
    # Flip the natural-gradient direction into a descent direction: along it the surrogate
    # only decreases, so no fraction of the step can be accepted.
    directions = []

    def descent_direction(matvec, b, iterations=10, tolerance=1e-10):
        solved = conjugate_gradient(matvec, b, iterations, tolerance)
        directions.append(-solved.solution)
        return ConjugateGradientResult(solution=-solved.solution, product=-solved.product)

    monkeypatch.setattr(maml_module, "conjugate_gradient", descent_direction)
    policy = make_policy(31)
    learner = MAML(policy=policy, config=MAMLConfig(outer="trpo", max_kl=0.01,
                                                     line_search_steps=8))
    pre, post, _ = _outer_problem(310, learner)
    before = _snapshot(policy)
    stats = learner.meta_update([pre], post)
    assert len(directions) == 1 and float(directions[0].abs().max()) > 1e-3
    assert stats["step_accepted"] == 0.0 and stats["line_search_tries"] == 8.0
    for n, p in policy.named_parameters():
        assert torch.equal(p, before[n]), n


def test_ppo_meta_update_changes_parameters_and_increases_the_clipped_surrogate():
    policy = make_policy(32)
    config = MAMLConfig(outer="ppo", ppo_epochs=5, outer_lr=1e-2)
    learner = MAML(policy=policy, config=config)
    pre, post, old_adapted = _outer_problem(320, learner)
    old = [tuple(t.detach() for t in distribution(policy, a, post.task(k).obs_TNO))
           for k, a in enumerate(old_adapted)]

    def clipped() -> float:
        with torch.no_grad():
            adapted = learner.adapt_tasks([pre])
            return float(outer_terms(policy, adapted, post, old, clip=config.ppo_clip).clipped)

    before, clipped_before = _snapshot(policy), clipped()
    learner.meta_update([pre], post)
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())
    assert clipped() > clipped_before


# Fisher-vector products on a subsample ------------------------------------------------------

def _repeated(batch: Batch, n: int) -> Batch:
    """Each trial of each task n times in a row: the same data, n times as many trials."""
    J = batch.trials_per_task
    cols = [k * J + j for k in range(batch.num_tasks) for j in range(J) for _ in range(n)]
    return replace(batch.trials(cols), tasks=list(batch.tasks), trials_per_task=J * n)


def _captured_products(monkeypatch, config: MAMLConfig, seed: int, repeat: int = 1):
    """The conjugate gradient's right-hand side and its matrix on fixed probes, in one
    TRPO meta-update of a fixed problem whose trials are each repeated `repeat` times."""
    policy = make_policy(seed, obs=2, act=1, hidden=(4,))
    captured = {}

    def capture(matvec, b, iterations=10, tolerance=1e-10):
        gen = torch.Generator().manual_seed(seed)
        probes = [torch.randn(b.shape, generator=gen, dtype=F64) for _ in range(3)]
        captured.update(b=b.detach().clone(), products=[matvec(v).detach() for v in probes])
        return conjugate_gradient(matvec, b, iterations, tolerance)

    monkeypatch.setattr(maml_module, "conjugate_gradient", capture)
    learner = MAML(policy=policy, config=config)
    pre = make_batch(seed + 1, policy=policy, params=[policy.params()] * 2, obs=2, act=1, E=4)
    post = make_batch(seed + 2, policy=policy, params=learner.adapt_tasks([pre]), obs=2,
                      act=1, E=4)
    learner.meta_update([_repeated(pre, repeat)], _repeated(post, repeat))
    return captured


def test_fisher_subsample_of_repeated_episodes_gives_the_exact_products(monkeypatch):
    """Every 3rd of 3 copies of each episode is the data itself, so the subsampled
    curvature must equal the exact one, and the gradient is the same either way."""
    exact = _captured_products(monkeypatch, MAMLConfig(), seed=350)
    subsampled = _captured_products(monkeypatch, MAMLConfig(fisher_subsample=3), seed=350,
                                    repeat=3)
    torch.testing.assert_close(subsampled["b"], exact["b"], rtol=1e-9, atol=1e-12)
    for got, want in zip(subsampled["products"], exact["products"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_fisher_subsample_estimates_the_curvature_on_fewer_episodes(monkeypatch):
    exact = _captured_products(monkeypatch, MAMLConfig(), seed=360)
    halved = _captured_products(monkeypatch, MAMLConfig(fisher_subsample=2), seed=360)
    torch.testing.assert_close(halved["b"], exact["b"], rtol=1e-9, atol=1e-12)
    for got, want in zip(halved["products"], exact["products"], strict=True):
        assert not torch.allclose(got, want, rtol=1e-3)
        assert float(got @ want) > 0  # still a curvature of the same problem


def test_every_nth_trial_keeps_the_tasks_and_picks_columns():
    batch = make_batch(370, K=2, E=5)
    sub = batch.every_nth_trial(2)
    assert sub.trials_per_task == 3 and sub.tasks == batch.tasks
    torch.testing.assert_close(sub.obs_TNO, batch.obs_TNO[:, [0, 2, 4, 5, 7, 9]])
    torch.testing.assert_close(sub.task(1).adv_TN, batch.task(1).adv_TN[:, ::2])
    with pytest.raises(ValueError, match=r"n must be in \[1, 5\]"):
        batch.every_nth_trial(6)


def test_fisher_subsample_is_checked_against_the_episodes():
    with pytest.raises(ValueError, match="fisher_subsample"):
        MAMLConfig(episodes_per_task=4, fisher_subsample=5)
    with pytest.raises(ValueError, match="fisher_subsample"):
        MAMLConfig(fisher_subsample=0)


@pytest.mark.parametrize("normalize_advantages", [True, False])
@pytest.mark.parametrize("rew_dtype", [torch.float32, F64])
def test_advantages_over_all_tasks_at_once_equal_task_by_task(normalize_advantages,
                                                               rew_dtype):
    batch = make_batch(380, K=4, E=5, T=30)
    batch = replace(batch, rew_TN=batch.rew_TN.to(rew_dtype), adv_TN=None)
    got = with_advantages(batch, gamma=0.99, gae_lambda=0.95,
                          normalize_advantages=normalize_advantages).adv_TN
    columns = []  # the reference: every step computed on one task's columns alone
    for k in range(batch.num_tasks):
        task = batch.task(k)
        rew, features = task.rew_TN.double(), baseline_features(task.obs_TNO.double())
        weights = fit_linear_baseline(features, discounted_returns(rew, task.valid_TN, 0.99),
                                      task.valid_TN)
        adv = gae(rew, predict_baseline(features, weights, task.valid_TN), task.valid_TN,
                  0.99, 0.95)
        columns.append(normalize(adv, task.valid_TN) if normalize_advantages else adv)
    want = torch.cat(columns, dim=1).to(rew_dtype)
    assert got.dtype == rew_dtype and torch.equal(got, want)
    assert not torch.equal(got[:, :5], got[:, 5:10])  # tasks get their own baselines
