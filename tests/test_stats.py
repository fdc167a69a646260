"""Statistics against direct computations on small hand-made tables."""

import numpy as np
import pytest

from fewshot.eval import stats

# Two runs (strata), five tasks each: mean return per task.
RUN_A = np.array([-10.0, -4.0, -6.0, -30.0, -5.0])
RUN_B = np.array([-8.0, -3.0, -7.0, -12.0, -2.0])


def direct_stratified_bootstrap(strata, reduce, resamples, seed):
    """Resample every stratum separately, pool, reduce; the 2.5 and 97.5 percentiles."""
    rng = np.random.default_rng(seed)
    values = [reduce(np.concatenate([rng.choice(s, size=s.size) for s in strata]))
              for _ in range(resamples)]
    return np.percentile(values, [2.5, 97.5])


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.array([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -100.0])
    assert stats.iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))


def test_estimate_values_are_the_pooled_mean_and_iqm():
    pooled = np.concatenate([RUN_A, RUN_B])
    assert stats.estimate([RUN_A, RUN_B]).value == pytest.approx(pooled.mean())
    middle = np.sort(pooled)[2:8]  # 10 values: trim 2.5 -> scipy trims 2 from each end
    assert stats.estimate([RUN_A, RUN_B], stats.iqm).value == pytest.approx(middle.mean())


@pytest.mark.parametrize("reduce", [stats.mean, stats.iqm])
def test_estimate_interval_agrees_with_a_direct_stratified_bootstrap(reduce):
    ours = stats.estimate([RUN_A, RUN_B], reduce, seed=3)
    low, high = direct_stratified_bootstrap([RUN_A, RUN_B], reduce, 20000, seed=4)
    width = high - low
    assert ours.low <= ours.value <= ours.high
    assert ours.low == pytest.approx(low, abs=0.1 * width)
    assert ours.high == pytest.approx(high, abs=0.1 * width)


def test_the_bootstrap_resamples_within_each_run_never_across():
    # each run is constant: resampling inside a run changes nothing, pooling across would
    ours = stats.estimate([np.zeros(4), np.full(4, 10.0)])
    assert (ours.value, ours.low, ours.high) == (5.0, 5.0, 5.0)


def test_the_interval_is_reproducible_for_a_seed_and_narrows_with_more_tasks():
    assert stats.estimate([RUN_A], seed=1) == stats.estimate([RUN_A], seed=1)
    many = np.tile(RUN_A, 20)
    few, lots = stats.estimate([RUN_A]), stats.estimate([many])
    assert lots.high - lots.low < 0.5 * (few.high - few.low)


def test_difference_is_the_difference_of_means_with_an_interval_around_it():
    gap = stats.difference([RUN_A, RUN_B], [RUN_A - 5.0, RUN_B - 5.0], seed=0)
    assert gap.value == pytest.approx(5.0)
    assert gap.low < 5.0 < gap.high


def test_probability_of_improvement_on_a_hand_made_table():
    x = [np.array([1.0, 2.0]), np.array([5.0]), np.array([2.0, 2.0])]
    y = [np.array([0.0, 3.0]), np.array([5.0]), np.array([1.0, 1.0])]
    # task 1: 2 of 4 pairs won; task 2: a tie counts half; task 3: all won
    result = stats.probability_of_improvement(x, y)
    assert result.value == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert result.low <= result.value <= result.high
    swapped = stats.probability_of_improvement(y, x)
    assert swapped.value == pytest.approx(1.0 - result.value)


def test_per_run_reduces_each_run_alone():
    assert stats.per_run([RUN_A, RUN_B]) == [pytest.approx(RUN_A.mean()),
                                             pytest.approx(RUN_B.mean())]


@pytest.mark.parametrize(("strata", "message"), [
    ([], "at least one non-empty"),
    ([np.array([])], "at least one non-empty"),
    ([np.array([1.0, np.nan])], "NaN"),
    ([np.ones((2, 2))], "1-D"),
])
def test_bad_scores_are_refused(strata, message):
    with pytest.raises(ValueError, match=message):
        stats.estimate(strata)


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement([np.ones(2)], [np.ones(2), np.ones(2)])
