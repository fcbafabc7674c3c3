"""Evaluation on VerilogEval and RTLLM: benchmark loaders with official prompts, official pass rules,
pass@k."""

from .benchmarks import BENCHMARKS, Problem, load_benchmark
from .pass_at_k import mean_pass_at_k, pass_at_k

__all__ = ["BENCHMARKS", "Problem", "load_benchmark", "mean_pass_at_k", "pass_at_k"]
