"""Verilog pass@k on VerilogEval (v1, v2) and RTLLM (v1.1, v2.0) by simulation, as an `evaluate` metric.

Thin over `salv_trl.evaluation`: the loaders, the official pass rules and the estimator live there.
"""

from __future__ import annotations

import datasets
import evaluate

from salv_trl.evaluation.benchmarks import BENCHMARKS
from salv_trl.evaluation.official import require_opt_in
from salv_trl.evaluation.report import evaluate_completions

_CITATION = """\
@article{salv2025,
  title={QiMeng-SALV: Signal-Aware Learning for Verilog Code Generation},
  journal={arXiv preprint arXiv:2510.19296},
  year={2025}
}
"""

_DESCRIPTION = """\
Functional pass@k of generated Verilog on VerilogEval v1 (Human, Machine), VerilogEval v2 (spec-to-rtl,
code-complete), RTLLM v1.1 and v2.0, or a custom task set, judged by compiling and simulating each completion
with the benchmark's own testbench under Icarus Verilog, faithful to each benchmark's official harness. Also
reports syntax pass@k, the problems whose own reference fails under the installed simulator (unscorable:
excluded from `pass@k`, counted as failed in `pass@k_all`), and per-problem, per-sample and per-output
results.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[str]]`): For each problem, its raw completions (model text; code is extracted from
        the last fenced verilog block, as for training).
    references (`list[str]`): The problem id of each entry (`Prob001_zero`, `gatesv`, `adder_8bit`, ...).
    k (`list[int]`, *optional*, defaults to `[1]`): The k values; pass@k is reported only where every problem
        has at least k completions.
    data_dir (`str`, *optional*): Benchmark location (a local checkout in the original layout, a folder
        holding several, or a Hub dataset id); overrides the one given to `evaluate.load`.
    num_workers (`int`, *optional*): Parallel sandboxes (default: the CPU count).
    batch_size (`int`, *optional*, defaults to `32`): VerilogEval candidates simulated together
        (1: per sample).
    per_problem (`bool`, *optional*, defaults to `True`): Include per-problem and per-sample results.
Returns:
    `pass@k` (scorable problems), `pass@k_all` (unscorable counted as failed), `syntax_pass@k`, `unscorable`,
    `num_problems`, `num_scorable`, `status_counts`, and `per_problem`.
Example:
    >>> import os; os.environ["SALV_TRL_ALLOW_CODE_EXECUTION"] = "1"
    >>> metric = evaluate.load("evaluation/verilog_pass_at_k", "rtllm-v1.1", data_dir="../shared/benchmarks")
    >>> result = metric.compute(predictions=[["```verilog\\nmodule adder_8bit(...); ... endmodule\\n```"]],
    ...                         references=["adder_8bit"], k=[1])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VerilogPassAtK(evaluate.Metric):
    """pass@k of Verilog completions on one benchmark (the config name)."""

    def __init__(self, *args, data_dir: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # not `self.data_dir`: evaluate keeps its own cache folder under that name
        self.benchmark_dir = data_dir

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {self.config_name!r}; choose one of {', '.join(BENCHMARKS)}")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Value("string"),
                }
            ),
            homepage="https://arxiv.org/abs/2510.19296",
            codebase_urls=["https://github.com/NVlabs/verilog-eval", "https://github.com/hkust-zhiyao/RTLLM"],
            reference_urls=["https://arxiv.org/abs/2107.03374"],
        )

    def _compute(self, predictions, references, k=(1,), data_dir=None, num_workers=None, batch_size=32,
                 per_problem=True):  # fmt: skip
        require_opt_in()
        report = evaluate_completions(
            self.config_name,
            predictions,
            references,
            k=k,
            data_dir=data_dir or self.benchmark_dir,
            workers=num_workers,
            batch_size=batch_size,
        )
        return report.to_dict(per_problem=per_problem)
