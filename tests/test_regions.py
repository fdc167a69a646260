"""Tests for tasks.regions: intervals, parameters, regions and their sampling."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tasks.regions import Interval, Param, Region, box, choice, product, shell, union


def _box_volume(b) -> float:
    return math.prod(iv.hi - iv.lo for iv in b.values())


def _grid(lo: float, hi: float, step: float) -> list[float]:
    return list(np.arange(lo, hi + step / 2, step))


# Interval ---------------------------------------------------------------------------


def test_interval_is_half_open():
    iv = Interval(0.0, 2.0)
    assert iv.contains(0.0)
    assert iv.contains(1.999)
    assert not iv.contains(2.0)
    assert not iv.contains(-1e-12)
    assert not iv.is_point


def test_interval_with_equal_ends_is_a_single_point():
    iv = Interval(1.0, 1.0)
    assert iv.is_point
    assert iv.contains(1.0)
    assert not iv.contains(1.0 + 1e-12)
    assert not iv.contains(1.0 - 1e-12)


def test_interval_rejects_lo_above_hi():
    with pytest.raises(ValueError, match="lo <= hi"):
        Interval(2.0, 1.0)


def test_touching_half_open_intervals_are_disjoint():
    a, b = Interval(0.0, 2.0), Interval(2.0, 3.0)
    assert not a.intersects(b)
    assert not b.intersects(a)


def test_overlapping_intervals_intersect():
    a, b = Interval(0.0, 2.0), Interval(1.999, 3.0)
    assert a.intersects(b)
    assert b.intersects(a)


@pytest.mark.parametrize(("point", "expected"), [(0.0, True), (1.0, True), (2.0, False),
                                                 (-0.5, False)])
def test_point_intersects_interval_iff_inside(point, expected):
    p, iv = Interval(point, point), Interval(0.0, 2.0)
    assert p.intersects(iv) is expected
    assert iv.intersects(p) is expected


def test_points_intersect_only_when_equal():
    assert Interval(1.0, 1.0).intersects(Interval(1.0, 1.0))
    assert not Interval(1.0, 1.0).intersects(Interval(2.0, 2.0))


# Param ------------------------------------------------------------------------------


def test_param_rejects_unknown_scale():
    with pytest.raises(ValueError, match=r"'speed'.*scale.*linear.*log"):
        Param("speed", 0.0, 1.0, scale="cubic")


@pytest.mark.parametrize(("low", "high"), [(1.0, 1.0), (2.0, 1.0)])
def test_param_rejects_empty_range(low, high):
    with pytest.raises(ValueError, match=r"'speed'.*low < high"):
        Param("speed", low, high)


@pytest.mark.parametrize("low", [0.0, -1.0])
def test_log_param_rejects_non_positive_low(low):
    with pytest.raises(ValueError, match=r"'mass'.*log.*low > 0"):
        Param("mass", low, 4.0, scale="log")


def test_param_rejects_labels_length_mismatch():
    with pytest.raises(ValueError, match=r"'gait'.*1 labels for 2 values"):
        Param("gait", values=(0, 1), labels=("run",))


def test_discrete_param_check_returns_int():
    leg = Param("leg", values=(0, 1, 2))
    for value in (2, np.int64(2), 2.0, np.float64(2.0)):
        checked = leg.check(value)
        assert checked == 2
        assert type(checked) is int


def test_continuous_param_check_returns_float():
    speed = Param("speed", 0.0, 3.0)
    for value in (1, np.int32(1), np.float32(1.0), 1.0):
        checked = speed.check(value)
        assert checked == 1.0
        assert type(checked) is float


def test_continuous_param_check_accepts_both_declared_ends():
    speed = Param("speed", 0.0, 3.0)
    assert speed.check(0.0) == 0.0
    assert speed.check(3.0) == 3.0


@pytest.mark.parametrize("value", [True, False, np.True_, "1.0", None, [1.0]])
def test_param_check_rejects_non_numbers(value):
    with pytest.raises(ValueError, match=r"'speed'.*\[0\.0, 3\.0\]"):
        Param("speed", 0.0, 3.0).check(value)


@pytest.mark.parametrize("value", [-0.001, 3.001, math.inf, math.nan])
def test_continuous_param_check_rejects_out_of_range(value):
    with pytest.raises(ValueError, match=r"'speed'.*\[0\.0, 3\.0\]"):
        Param("speed", 0.0, 3.0).check(value)


@pytest.mark.parametrize("value", [1.5, 3, -1, True])
def test_discrete_param_check_rejects_values_not_listed(value):
    gait = Param("gait", values=(0, 1, 2), labels=("run", "trot", "hop"))
    with pytest.raises(ValueError, match=r"'gait'.*0 \(run\), 1 \(trot\), 2 \(hop\)"):
        gait.check(value)


def test_unlabelled_discrete_param_error_lists_values():
    with pytest.raises(ValueError, match=r"'leg'.*\[0, 1, 2\]"):
        Param("leg", values=(0, 1, 2)).check(5)


def test_param_label_uses_labels_for_discrete_values():
    gait = Param("gait", values=(0, 1, 2), labels=("run", "trot", "hop"))
    assert gait.label(2) == "hop"
    assert gait.label(2.0) == "hop"


# Region construction ----------------------------------------------------------------


def test_box_is_half_open_in_every_parameter():
    region = box(x=(0, 1), y=(2, 4))
    assert region.contains({"x": 0.0, "y": 2.0})
    assert region.contains({"x": 0.999, "y": 3.999})
    assert not region.contains({"x": 1.0, "y": 3.0})
    assert not region.contains({"x": 0.5, "y": 4.0})


def test_choice_contains_exactly_its_values():
    region = choice("leg", [0, 1, 2])
    assert len(region.boxes) == 3
    assert all(region.contains({"leg": v}) for v in (0, 1, 2))
    assert not region.contains({"leg": 0.5})
    assert not region.contains({"leg": 3})


def test_region_rejects_overlapping_boxes():
    with pytest.raises(ValueError, match="disjoint"):
        union([box(x=(0, 2)), box(x=(1, 3))])


def test_region_rejects_repeated_point():
    with pytest.raises(ValueError, match="disjoint"):
        choice("leg", [1, 1])


def test_union_of_touching_boxes_covers_both():
    region = union([box(x=(0, 1)), box(x=(1, 2))])
    assert region.contains({"x": 1.0})
    assert region.contains({"x": 0.0})
    assert not region.contains({"x": 2.0})


def test_region_rejects_boxes_over_different_parameters():
    with pytest.raises(ValueError, match="same parameters"):
        union([box(x=(0, 1)), box(y=(0, 1))])


def test_region_needs_a_box():
    with pytest.raises(ValueError, match="at least one box"):
        Region(())


def test_region_intersects_rejects_different_parameters():
    with pytest.raises(ValueError, match="cannot compare"):
        box(x=(0, 1)).intersects(box(y=(0, 1)))


def test_regions_sharing_only_a_boundary_do_not_intersect():
    assert not box(x=(0, 2), y=(0, 1)).intersects(box(x=(2, 3), y=(0, 1)))
    assert box(x=(0, 2), y=(0, 1)).intersects(box(x=(1, 3), y=(0.5, 2)))


def test_product_rejects_shared_parameter_names():
    with pytest.raises(ValueError, match=r"\['x'\]"):
        product([box(x=(0, 1), y=(0, 1)), box(x=(2, 3))])


def test_product_is_the_cartesian_product():
    region = product([union([box(x=(0, 1)), box(x=(2, 3))]), choice("c", [0, 1, 2])])
    assert set(region.names) == {"x", "c"}
    assert len(region.boxes) == 6
    assert region.contains({"x": 2.5, "c": 1})
    assert not region.contains({"x": 1.5, "c": 1})
    assert not region.contains({"x": 0.5, "c": 3})


# shell ------------------------------------------------------------------------------

OUTER_3D = {"x": (0.0, 4.0), "y": (0.0, 3.0), "z": (0.0, 2.0)}
INNER_3D = {"x": (1.0, 2.0), "y": (1.0, 2.5), "z": (0.5, 1.0)}


def test_shell_slabs_are_pairwise_disjoint():
    slabs = shell(OUTER_3D, INNER_3D).boxes
    assert len(slabs) == 6
    for a, b in itertools.combinations(slabs, 2):
        assert not Region((a,)).intersects(Region((b,)))


def test_shell_volume_is_outer_minus_inner():
    outer_volume = 4.0 * 3.0 * 2.0
    inner_volume = 1.0 * 1.5 * 0.5
    total = sum(_box_volume(b) for b in shell(OUTER_3D, INNER_3D).boxes)
    assert total == pytest.approx(outer_volume - inner_volume)


def test_shell_contains_exactly_outer_minus_inner_on_a_grid():
    region = shell(OUTER_3D, INNER_3D)
    outer, inner = box(**OUTER_3D), box(**INNER_3D)
    for x, y, z in itertools.product(_grid(-0.5, 4.5, 0.5), _grid(-0.5, 3.5, 0.5),
                                     _grid(-0.25, 2.25, 0.25)):
        point = {"x": x, "y": y, "z": z}
        expected = outer.contains(point) and not inner.contains(point)
        assert region.contains(point) is expected, point


def test_shell_with_inner_touching_outer_side_skips_empty_slabs():
    region = shell({"x": (0.0, 4.0), "y": (0.0, 4.0)}, {"x": (0.0, 2.0), "y": (0.0, 4.0)})
    assert len(region.boxes) == 1
    assert region.contains({"x": 2.0, "y": 0.0})
    assert not region.contains({"x": 1.0, "y": 1.0})


@pytest.mark.parametrize("inner_x", [(3.0, 5.0), (-1.0, 1.0), (2.0, 2.0)])
def test_shell_rejects_inner_not_inside_outer(inner_x):
    with pytest.raises(ValueError, match=r"inner x range.*outer"):
        shell({"x": (0.0, 4.0), "y": (0.0, 4.0)}, {"x": inner_x, "y": (1.0, 2.0)})


def test_shell_rejects_different_parameter_names():
    with pytest.raises(ValueError, match="same parameters"):
        shell({"x": (0.0, 4.0)}, {"y": (1.0, 2.0)})


def test_shell_samples_never_fall_in_the_inner_box():
    params = {n: Param(n, lo, hi) for n, (lo, hi) in OUTER_3D.items()}
    values = shell(OUTER_3D, INNER_3D).sample(5000, params, np.random.default_rng(0))
    outer, inner = box(**OUTER_3D), box(**INNER_3D)
    for i in range(5000):
        point = {n: values[n][i] for n in OUTER_3D}
        assert outer.contains(point)
        assert not inner.contains(point)


# sample -----------------------------------------------------------------------------


def _mixed_region_and_params():
    region = product([
        shell({"x": (0.0, 4.0), "s": (0.25, 4.0)}, {"x": (1.0, 3.0), "s": (0.5, 2.0)}),
        choice("c", [1, 2, 5]),
    ])
    params = {"x": Param("x", 0.0, 4.0), "s": Param("s", 0.25, 4.0, scale="log"),
              "c": Param("c", values=(1, 2, 5))}
    return region, params


def test_samples_lie_in_the_region():
    region, params = _mixed_region_and_params()
    values = region.sample(3000, params, np.random.default_rng(1))
    assert set(values) == {"x", "s", "c"}
    assert all(v.shape == (3000,) for v in values.values())
    for i in range(3000):
        assert region.contains({n: values[n][i] for n in values})


def test_log_scale_parameter_is_sampled_log_uniformly():
    params = {"s": Param("s", 0.25, 4.0, scale="log")}
    s = box(s=(0.25, 4.0)).sample(20_000, params, np.random.default_rng(2))["s"]
    # log s is uniform on [-ln 4, ln 4]: the sample median has sd about
    # ln 4 / sqrt(20000) ~ 0.01 in log, so 0.05 is > 4 sd (linear sampling gives 2.1).
    assert np.median(s) == pytest.approx(1.0, abs=0.05)
    # a quarter of the log-width lies in [0.25, 0.5); sd of the fraction is ~0.003.
    assert np.mean(s < 0.5) == pytest.approx(0.25, abs=0.02)
    assert s.min() >= 0.25
    assert s.max() < 4.0


LOG_SAMPLE = """
import numpy as np
from tasks.regions import Param, box
params = {"s": Param("s", 0.25, 4.0, scale="log")}
print(repr(box(s=(0.25, 4.0)).sample(200, params, np.random.default_rng(0))["s"].tolist()))
"""


def test_log_scale_sample_is_the_same_without_wide_simd():
    """A frozen task set must be the same on every machine. numpy's SIMD exp gives other
    last bits with and without AVX-512 (on such a machine, 4 of 20 cheetah-dyn tasks
    differed), so a sample must not depend on the vector units numpy finds."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    def sample(env: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", LOG_SAMPLE], capture_output=True,
                              text=True, check=True, env={**os.environ, **env}).stdout

    assert sample({}) == sample({"NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)})


def test_linear_scale_parameter_is_sampled_uniformly():
    params = {"x": Param("x", 0.25, 4.0)}
    x = box(x=(0.25, 4.0)).sample(20_000, params, np.random.default_rng(3))["x"]
    assert np.median(x) == pytest.approx(2.125, abs=0.05)


def test_sampling_is_uniform_by_volume_across_boxes():
    params = {"x": Param("x", 0.0, 5.0)}
    region = union([box(x=(0.0, 1.0)), box(x=(2.0, 5.0))])
    x = region.sample(20_000, params, np.random.default_rng(4))["x"]
    # share 1/4; sd of the fraction is sqrt(.25 * .75 / 20000) ~ 0.003, 0.02 is > 6 sd.
    assert np.mean(x < 1.0) == pytest.approx(0.25, abs=0.02)
    assert np.mean((x >= 2.0) & (x < 3.5)) == pytest.approx(0.375, abs=0.02)


def test_volume_of_log_boxes_is_measured_in_log_scale():
    params = {"s": Param("s", 0.25, 4.0, scale="log")}
    region = union([box(s=(0.25, 0.5)), box(s=(1.0, 4.0))])
    s = region.sample(20_000, params, np.random.default_rng(5))["s"]
    # log-widths ln 2 and ln 4: share 1/3 (a linear measure would give 0.077).
    assert np.mean(s < 0.5) == pytest.approx(1 / 3, abs=0.02)


def test_multidimensional_box_volumes_weight_sampling():
    params = {"x": Param("x", 0.0, 4.0), "y": Param("y", 0.0, 4.0)}
    region = union([box(x=(0.0, 1.0), y=(0.0, 1.0)), box(x=(1.0, 4.0), y=(0.0, 3.0))])
    x = region.sample(20_000, params, np.random.default_rng(6))["x"]
    assert np.mean(x < 1.0) == pytest.approx(0.1, abs=0.015)


def test_points_of_a_choice_are_equally_likely():
    params = {"c": Param("c", values=(1, 2, 5))}
    c = choice("c", [1, 2, 5]).sample(30_000, params, np.random.default_rng(7))["c"]
    assert set(np.unique(c)) == {1.0, 2.0, 5.0}
    for v in (1, 2, 5):
        assert np.mean(c == v) == pytest.approx(1 / 3, abs=0.02)


def test_sample_is_deterministic_for_a_seed():
    region, params = _mixed_region_and_params()
    a = region.sample(200, params, np.random.default_rng(8))
    b = region.sample(200, params, np.random.default_rng(8))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_sample_differs_for_a_different_seed():
    region, params = _mixed_region_and_params()
    a = region.sample(200, params, np.random.default_rng(8))
    b = region.sample(200, params, np.random.default_rng(9))
    assert not np.array_equal(a["x"], b["x"])
    assert not np.array_equal(a["s"], b["s"])
