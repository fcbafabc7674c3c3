"""pass@k against hand-computed values."""

from __future__ import annotations

import pytest

from salv_trl.evaluation.pass_at_k import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (20, 1, 10, 0.5),  # one passing sample is in half of the 10-subsets
        (4, 0, 1, 0.0),  # c = 0
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),  # c = n
        (4, 4, 4, 1.0),
        (3, 1, 3, 1.0),  # n - c < k: every k-subset holds the passing sample
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_exact_for_large_n():
    # 1 - C(1000-1, 500) / C(1000, 500) = 1 - 500/1000: floating products would drift, math.comb does not
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 5), (0, 0, 1)])
def test_pass_at_k_refuses_n_below_k(n, c, k):
    with pytest.raises(ValueError, match="at least"):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0)])
def test_pass_at_k_rejects_bad_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_divides_by_problem_count_and_skips_k_above_n():
    counts = [(5, 5), (5, 0), (5, 1)]
    # pass@1 = (1 + 0 + 0.2) / 3, not / 4 as RTLLM's auto_run.py computes
    assert mean_pass_at_k(counts, [1, 5, 10]) == pytest.approx({"pass@1": 1.2 / 3, "pass@5": 2 / 3})
    assert mean_pass_at_k([], [1]) == {}
