"""Bootstrap confidence intervals for per-task scores and the power estimate of a paired design."""

from __future__ import annotations

import random
from statistics import fmean

import pytest

from salv_trl.evaluation.statistics import bootstrap_mean, minimum_detectable_difference, paired_difference


def test_the_interval_holds_the_mean_and_is_deterministic():
    rng = random.Random(0)
    values = [[rng.random() for _ in range(50)], [rng.random() for _ in range(30)]]
    interval = bootstrap_mean(values, seed=3)
    assert interval.mean == pytest.approx(fmean(values[0] + values[1]))
    assert interval.low < interval.mean < interval.high
    assert bootstrap_mean(values, seed=3) == interval and bootstrap_mean(values, seed=4) != interval


def test_constant_data_has_a_point_interval():
    interval = bootstrap_mean([[0.25] * 10])
    assert (interval.low, interval.mean, interval.high) == (0.25, 0.25, 0.25)


def test_a_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Coverage of the percentile bootstrap on Bernoulli(0.3) tasks (n = 200), 300 repetitions."""
    rng = random.Random(1)
    covered = 0
    for repetition in range(300):
        values = [float(rng.random() < 0.3) for _ in range(200)]
        interval = bootstrap_mean([values], resamples=2000, seed=repetition)
        covered += interval.low <= 0.3 <= interval.high
    assert 0.9 <= covered / 300 <= 0.99


def test_pairing_removes_the_spread_that_tasks_share():
    """Two models whose per-task scores differ by a constant 0.05 on very unequal tasks: the paired CI is a
    point at 0.05, while unpaired intervals of each model are wide and overlap."""
    rng = random.Random(2)
    base = [rng.random() * 0.9 for _ in range(100)]
    better = [x + 0.05 for x in base]
    difference = paired_difference([better], [base])
    assert difference.mean == pytest.approx(0.05)
    assert difference.high - difference.low < 1e-9 and difference.excludes_zero
    a, b = bootstrap_mean([better]), bootstrap_mean([base])
    assert a.low < b.high  # unpaired, the same data could not tell the models apart


def test_strata_are_resampled_separately():
    """Seed 0's tasks all score 0 and seed 1's all score 1: resampling within seeds keeps the pooled mean at
    exactly 0.5 in every replicate; pooled resampling would not."""
    interval = bootstrap_mean([[0.0] * 20, [1.0] * 20])
    assert (interval.low, interval.high) == (0.5, 0.5)


def test_paired_difference_needs_the_same_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        paired_difference([[0.1, 0.2]], [[0.1]])
    with pytest.raises(ValueError, match="at least one task"):
        bootstrap_mean([[]])


def test_minimum_detectable_difference_shrinks_with_the_square_root_of_the_tasks():
    pilot = [0.1, -0.1, 0.2, 0.0, -0.2, 0.1]
    small, large = minimum_detectable_difference(pilot, 25), minimum_detectable_difference(pilot, 100)
    assert small == pytest.approx(2 * large)
    # (1.96 + 0.84) * sd / sqrt(n), with the pilot's sample standard deviation
    sd = (sum((x - fmean(pilot)) ** 2 for x in pilot) / (len(pilot) - 1)) ** 0.5
    assert large == pytest.approx((1.959964 + 0.841621) * sd / 10, rel=1e-5)
