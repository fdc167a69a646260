"""Tests for fewshot.returns: discounted returns, GAE, normalisation and the linear baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshot.maths.returns import (
    ReturnScale,
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    normalize,
)

F64 = torch.float64


def _random_episodes(seed: int, T: int = 7, N: int = 5):
    """Random rewards and values, episodes of random lengths (column 0 runs to the horizon)."""
    gen = torch.Generator().manual_seed(seed)
    rew = torch.randn(T, N, generator=gen, dtype=F64)
    value = torch.randn(T, N, generator=gen, dtype=F64)
    lengths = torch.randint(1, T + 1, (N,), generator=gen)
    lengths[0] = T
    valid = torch.arange(T)[:, None] < lengths[None, :]
    return rew, value, valid


def test_discounted_returns_hand_example_with_early_termination():
    rew = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 100.0], [4.0, 100.0]], dtype=F64)
    valid = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    ret = discounted_returns(rew, valid, gamma=0.5)
    # column 0: 4, 3 + 0.5*4 = 5, 2 + 0.5*5 = 4.5, 1 + 0.5*4.5 = 3.25 (backwards in time);
    # column 1 ends after step 1: the 100s after its end count for nothing.
    expected = torch.tensor([[3.25, 1.5], [4.5, 1.0], [5.0, 0.0], [4.0, 0.0]], dtype=F64)
    torch.testing.assert_close(ret, expected, rtol=0, atol=1e-12)


def test_discounted_returns_match_a_direct_sum_over_valid_steps():
    rew, _, valid = _random_episodes(0)
    gamma = 0.9
    ret = discounted_returns(rew, valid, gamma)
    T, N = rew.shape
    for n in range(N):
        length = int(valid[:, n].sum())
        for t in range(T):
            want = sum(gamma ** (s - t) * float(rew[s, n]) for s in range(t, length))
            assert float(ret[t, n]) == pytest.approx(want, abs=1e-12)


def test_gae_with_lambda_one_is_returns_minus_values_on_valid_steps():
    rew, value, valid = _random_episodes(1)
    gamma = 0.95
    adv = gae(rew, value, valid, gamma, lam=1.0)
    want = discounted_returns(rew, valid, gamma) - value
    torch.testing.assert_close(adv[valid], want[valid], rtol=0, atol=1e-12)
    assert (adv[~valid] == 0).all()


def test_gae_with_lambda_zero_is_the_one_step_td_error():
    rew, value, valid = _random_episodes(2)
    gamma = 0.9
    adv = gae(rew, value, valid, gamma, lam=0.0)
    T, N = rew.shape
    for n in range(N):
        for t in range(T):
            if not valid[t, n]:
                assert float(adv[t, n]) == 0.0
                continue
            next_value = float(value[t + 1, n]) if t + 1 < T and valid[t + 1, n] else 0.0
            delta = float(rew[t, n]) + gamma * next_value - float(value[t, n])
            assert float(adv[t, n]) == pytest.approx(delta, abs=1e-12)


def test_gae_hand_example_with_mid_episode_termination():
    rew = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 50.0]], dtype=F64)
    value = torch.tensor([[0.5, 0.5], [1.0, 1.0], [1.5, 7.0]], dtype=F64)
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    adv = gae(rew, value, valid, gamma=0.9, lam=0.5)
    # gamma*lam = 0.45. Column 0 (runs to the horizon, nothing bootstrapped after step 2):
    #   delta = [1 + 0.9*1 - 0.5, 2 + 0.9*1.5 - 1, 3 - 1.5] = [1.4, 2.35, 1.5]
    #   A2 = 1.5, A1 = 2.35 + 0.45*1.5 = 3.025, A0 = 1.4 + 0.45*3.025 = 2.76125
    # Column 1 terminates after step 1, so V[2] = 7 is not bootstrapped:
    #   delta1 = 2 - 1 = 1, delta0 = 1 + 0.9*1 - 0.5 = 1.4; A1 = 1, A0 = 1.4 + 0.45 = 1.85
    expected = torch.tensor([[2.76125, 1.85], [3.025, 1.0], [1.5, 0.0]], dtype=F64)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)


def test_gae_ignores_values_and_rewards_after_an_episode_ends():
    rew, value, valid = _random_episodes(3)
    adv = gae(rew, value, valid, 0.99, 0.9)
    gen = torch.Generator().manual_seed(33)
    noise_rew = 1e3 * torch.randn(rew.shape, generator=gen, dtype=F64)
    noise_value = 1e3 * torch.randn(value.shape, generator=gen, dtype=F64)
    rew2 = torch.where(valid, rew, noise_rew)
    value2 = torch.where(valid, value, noise_value)
    assert (~valid).any()
    torch.testing.assert_close(gae(rew2, value2, valid, 0.99, 0.9), adv, rtol=0, atol=1e-12)


def test_normalize_gives_zero_mean_unit_variance_on_valid_entries_and_zero_elsewhere():
    _, _, valid = _random_episodes(4, T=12, N=6)
    gen = torch.Generator().manual_seed(44)
    x = 3.0 + 5.0 * torch.randn(valid.shape, generator=gen, dtype=F64)
    x = torch.where(valid, x, torch.full_like(x, 1e6))  # huge junk where invalid
    out = normalize(x, valid)
    assert (out[~valid] == 0).all()
    assert float(out[valid].mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(out[valid].std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)


def test_baseline_features_shape_clipping_and_time_columns():
    T, N, OBS = 6, 3, 2
    gen = torch.Generator().manual_seed(5)
    obs = torch.randn(T, N, OBS, generator=gen, dtype=F64)
    obs[1, 0, 0] = 20.0
    obs[2, 1, 1] = -15.0
    feats = baseline_features(obs)
    assert feats.shape == (T, N, 2 * OBS + 4)
    clipped = obs.clamp(-10.0, 10.0)
    assert float(feats[1, 0, 0]) == 10.0 and float(feats[1, 0, OBS]) == 100.0
    assert float(feats[2, 1, 1]) == -10.0 and float(feats[2, 1, OBS + 1]) == 100.0
    torch.testing.assert_close(feats[..., :OBS], clipped, rtol=0, atol=0)
    torch.testing.assert_close(feats[..., OBS:2 * OBS], clipped ** 2, rtol=0, atol=0)
    t = (torch.arange(T, dtype=F64) / 100.0)[:, None].expand(T, N)
    torch.testing.assert_close(feats[..., 2 * OBS], t, rtol=0, atol=1e-15)
    torch.testing.assert_close(feats[..., 2 * OBS + 1], t ** 2, rtol=0, atol=1e-15)
    torch.testing.assert_close(feats[..., 2 * OBS + 2], t ** 3, rtol=0, atol=1e-15)
    assert (feats[..., 2 * OBS + 3] == 1).all()


def _regression_problem(seed: int, T: int = 15, N: int = 4, F: int = 6):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(T, N, F, generator=gen, dtype=F64)
    y = torch.randn(T, N, generator=gen, dtype=F64)
    lengths = torch.randint(T // 2, T + 1, (N,), generator=gen)
    valid = torch.arange(T)[:, None] < lengths[None, :]
    return X, y, valid


def test_fit_linear_baseline_matches_least_squares_on_valid_rows():
    X, y, valid = _regression_problem(6)
    w = fit_linear_baseline(X, y, valid, reg=1e-12)
    Xv = X[valid].numpy().astype(np.float64)
    yv = y[valid].numpy().astype(np.float64)
    want, *_ = np.linalg.lstsq(Xv, yv, rcond=None)
    assert w.shape == (X.shape[-1],)
    np.testing.assert_allclose(w.numpy(), want, rtol=0, atol=1e-6)


def test_fit_linear_baseline_ignores_invalid_rows():
    X, y, valid = _regression_problem(7)
    assert (~valid).any()
    w = fit_linear_baseline(X, y, valid)
    gen = torch.Generator().manual_seed(77)
    X2 = torch.where(valid[..., None], X, 1e3 * torch.randn(X.shape, generator=gen, dtype=F64))
    y2 = torch.where(valid, y, 1e3 * torch.randn(y.shape, generator=gen, dtype=F64))
    torch.testing.assert_close(fit_linear_baseline(X2, y2, valid), w, rtol=0, atol=1e-12)


def test_fit_linear_baseline_default_reg_handles_rank_deficient_features():
    # one observation dimension is always 0, so its obs and obs^2 features are all-zero
    # columns; with T = 3 the four time columns are also linearly dependent.
    gen = torch.Generator().manual_seed(8)
    obs = torch.randn(3, 4, 2, generator=gen, dtype=F64)
    obs[..., 1] = 0.0
    feats = baseline_features(obs)
    y = torch.randn(3, 4, generator=gen, dtype=F64)
    valid = torch.ones(3, 4, dtype=torch.bool)
    assert np.linalg.matrix_rank(feats[valid].numpy()) < feats.shape[-1]
    assert torch.isfinite(fit_linear_baseline(feats, y, valid)).all()


def test_fit_linear_baseline_default_reg_on_duplicated_columns_fits_like_least_squares():
    X, y, valid = _regression_problem(9, F=4)
    X = torch.cat([X, X[..., :1], torch.zeros_like(X[..., :1])], -1)  # a copy, a zero column
    Xv = X[valid].numpy()
    assert np.linalg.matrix_rank(Xv) == 4 < X.shape[-1]
    w = fit_linear_baseline(X, y, valid)
    assert torch.isfinite(w).all()
    want, *_ = np.linalg.lstsq(Xv, y[valid].numpy(), rcond=None)
    np.testing.assert_allclose(Xv @ w.numpy(), Xv @ want, rtol=0, atol=1e-4)


def test_return_scale_is_the_std_of_every_valid_return_seen_and_survives_a_round_trip():
    rng = np.random.default_rng(3)
    scale, seen = ReturnScale(), []
    assert scale.std == 1.0
    for T, N in ((5, 3), (8, 4), (2, 7)):
        ret = torch.from_numpy(rng.normal(4.0, 3.0, (T, N)))
        valid = torch.from_numpy(rng.random((T, N)) < 0.7)
        scale.update(ret, valid)
        seen.append(ret[valid].numpy())
    assert scale.std == pytest.approx(np.concatenate(seen).std(), rel=1e-12)
    copy = ReturnScale()
    copy.load_state_dict(scale.state_dict())
    assert copy.std == scale.std and copy.count == sum(len(x) for x in seen)
    scale.update(torch.ones(3, 2), torch.zeros(3, 2, dtype=torch.bool))  # nothing valid
    assert scale.std == copy.std
