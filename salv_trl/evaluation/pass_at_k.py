"""The unbiased pass@k estimator (Chen et al., 2021), computed exactly with integer binomials."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["mean_pass_at_k", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of `k` samples drawn without replacement from `n` (of which `c` pass)
    passes.

    Computes `1 - C(n - c, k) / C(n, k)` with `math.comb`, so it is exact for any `n` (no floating-point
    products).

    Args:
        n (`int`): Samples generated for the problem.
        c (`int`): Samples that pass.
        k (`int`): The `k` of pass@k; must not exceed `n` (pass@k is not defined with fewer samples than `k`).

    Returns:
        `float`: pass@k for this problem.

    Example:
    ```python
    >>> from salv_trl.evaluation.pass_at_k import pass_at_k
    >>> pass_at_k(n=5, c=2, k=2)
    0.7

    ```
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError("n, c and k must be integers")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """pass@k averaged over problems, for each `k` every problem has enough samples for.

    The mean divides by the number of problems scored, not one more (RTLLM's `auto_run.py` appends a zero to
    the list it averages).

    Args:
        counts (`Iterable[tuple[int, int]]`): `(n, c)` for each problem.
        ks (`Sequence[int]`): The values of k.

    Returns:
        `dict[str, float]`: `{"pass@k": value}` for each `k <= min(n)`; a `k` larger than some problem's `n`
        is left out rather than estimated from too few samples. Empty when `counts` is empty.
    """
    counts = list(counts)
    if not counts:
        return {}
    fewest = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in sorted(set(ks))
        if k <= fewest
    }
