"""Dependencies point one way: evaluation may import data, data never imports evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import requires_benchmarks

import salv_trl


def _modules_after(code: str) -> set[str]:
    """The `salv_trl` modules a fresh interpreter holds after running `code`."""
    script = (
        code
        + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('salv_trl'))))"
    )
    root = str(Path(salv_trl.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_data_does_not_import_evaluation():
    code = "import pkgutil, importlib, salv_trl.data as data\n"
    code += "for m in pkgutil.iter_modules(data.__path__): importlib.import_module(f'salv_trl.data.{m.name}')"
    loaded = _modules_after(code)
    assert "salv_trl.data.benchmarks" in loaded and "salv_trl.data.tasks" in loaded
    assert not {m for m in loaded if m.startswith("salv_trl.evaluation")}


@requires_benchmarks
def test_loading_benchmark_tasks_does_not_import_evaluation(benchmarks_dir):
    code = "from salv_trl.data.tasks import load_tasks\n"
    loaded = _modules_after(code + f"load_tasks({str(benchmarks_dir)!r}, benchmark='rtllm-v1.1')")
    assert not {m for m in loaded if m.startswith("salv_trl.evaluation")}


def test_evaluation_problems_are_data_tasks():
    from salv_trl.data.benchmarks import Problem
    from salv_trl.data.tasks import Task
    from salv_trl.evaluation import Problem as EvaluationProblem

    assert EvaluationProblem is Problem and issubclass(Problem, Task)
