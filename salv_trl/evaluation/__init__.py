"""Evaluation on VerilogEval and RTLLM: the official pass rules, the scoring engine, pass@k; the benchmark
loaders (with official prompts) live in [`salv_trl.data.benchmarks`] and are re-exported here."""

from .benchmarks import BENCHMARKS, Problem, load_benchmark
from .pass_at_k import mean_pass_at_k, pass_at_k

__all__ = ["BENCHMARKS", "Problem", "load_benchmark", "mean_pass_at_k", "pass_at_k"]
