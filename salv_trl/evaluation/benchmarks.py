"""The benchmarks evaluation scores: their problems are tasks read from the benchmark checkouts by
[`salv_trl.data.benchmarks`] (the loaders training uses too), re-exported here where evaluation users import
them."""

from ..data.benchmarks import BENCHMARKS, BENCHMARKS_ENV, Problem, load_benchmark, resolve_data_dir

__all__ = ["BENCHMARKS", "BENCHMARKS_ENV", "Problem", "load_benchmark", "resolve_data_dir"]
