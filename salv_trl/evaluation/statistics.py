"""Confidence intervals for per-task scores: percentile bootstrap over tasks, paired and stratified by seed.

A comparison of models on the same test tasks is paired: each task gives one score per model, and the
question is whether the mean per-task difference is away from zero. Tasks, not samples, are the unit that is
resampled (samples of one task are not independent), and with several seeds the tasks of each seed are
resampled within that seed (stratified), so every bootstrap replicate keeps the design's seed structure.

```python
>>> from salv_trl.evaluation.statistics import bootstrap_mean, paired_difference
>>> bootstrap_mean([[1.0, 0.0, 1.0, 1.0]]).mean
0.75
>>> paired_difference([[0.5, 0.5]], [[0.5, 0.5]]).high
0.0

```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, stdev

import numpy as np

__all__ = ["Interval", "bootstrap_mean", "paired_difference", "minimum_detectable_difference"]

Strata = Sequence[Sequence[float]]  # one sequence of per-task values per seed


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile-bootstrap confidence interval `[low, high]` at `level`."""

    mean: float
    low: float
    high: float
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """`mean [low, high]`, scaled (percent points by default)."""
        m, lo, hi = (round(scale * x, digits) for x in (self.mean, self.low, self.high))
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def bootstrap_mean(
    strata: Strata, *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Mean over all tasks of all strata, with a bootstrap CI that resamples tasks within each stratum.

    Args:
        strata: per-task values, one sequence per seed (a single seed: `[values]`).
        resamples: bootstrap replicates.
        level: confidence level of the interval.
        seed: seed of the resampling (the interval is a deterministic function of the data and the seed).
    """
    arrays = [np.asarray(values, dtype=float) for values in strata]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("every stratum needs at least one task")
    rng = np.random.default_rng(seed)
    total = sum(a.size for a in arrays)
    # Each replicate: a resample of each stratum's tasks, weighted by the stratum's size in the pooled mean.
    replicates = (
        sum(rng.choice(a, size=(resamples, a.size), replace=True).sum(axis=1) for a in arrays) / total
    )
    tail = (1 - level) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    mean = float(sum(a.sum() for a in arrays) / total)
    return Interval(mean, float(low), float(high), level)


def paired_difference(
    a: Strata, b: Strata, *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Mean per-task difference `a - b` with a paired bootstrap CI (tasks resampled within each seed).

    `a` and `b` hold the two models' per-task values in the same task order, seed by seed.
    """
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        raise ValueError("a paired difference needs the same tasks, in the same order, for both models")
    differences = [np.asarray(x, dtype=float) - np.asarray(y, dtype=float) for x, y in zip(a, b, strict=True)]
    return bootstrap_mean(differences, resamples=resamples, level=level, seed=seed)


def minimum_detectable_difference(
    differences: Sequence[float], tasks: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest true mean difference a paired design with `tasks` tasks detects with `power` at a
    two-sided `alpha`, given pilot per-task differences (normal approximation: (z₁₋α/₂ + z_power)·sd/√tasks).
    """
    if len(differences) < 2:
        raise ValueError("need at least two pilot differences to estimate their spread")
    z = NormalDist().inv_cdf
    return (z(1 - alpha / 2) + z(power)) * stdev(differences) / tasks**0.5
