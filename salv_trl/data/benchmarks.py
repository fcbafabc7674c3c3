"""Benchmark loaders: VerilogEval v1 / v2, RTLLM v1.1 / v2.0 and custom task sets, with their official
prompts.

Each loader reads a local checkout in the benchmark's original layout (or a folder holding several such
checkouts, such as `../shared/benchmarks`), or a Hub dataset with the tasks schema (`task_id`, `prompt`,
`reference`, `testbench`, `top`), and returns one [`Problem`] per benchmark problem, in the benchmark's order.

Prompts follow each benchmark's own generation scripts:

- VerilogEval v1 (Human / Machine): the problem description followed by the module header to complete, as in
  the VerilogEval paper (`detail_description` of the descriptions file, then the `prompt` header).
- VerilogEval v2 `spec-to-rtl`: `Question:` / `Answer:` with the `[BEGIN]` / `[DONE]` instruction and the
  spec-to-rtl system message of `scripts/sv-generate`; `code-complete-iccad2023`: the specification as `//`
  comments above the module header, with the code-complete system message. Both accept the official in-context
  examples (`examples=1..4`, read from the checkout's `scripts/verilog-example-prefix_<task>_<n>-shot.txt`)
  and the optional rules (`rules=True`).
- RTLLM: the design's `design_description.txt`.

A [`Problem`] is a [`~salv_trl.data.tasks.Task`] with the benchmark's harness files: training reads the tasks
([`~salv_trl.data.tasks.load_tasks`] with `benchmark=`), evaluation the problems
([`salv_trl.evaluation.load_benchmark`]). The reference's top module is found by the tasks' one rule
([`~salv_trl.data.tasks.task_top`]); on every problem of the four benchmarks it is the module the official
harness needs (`top_module`, `RefModule`, RTLLM's `verified_<design>`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..hdl.source import VerilogInputError
from .tasks import Task, task_top

__all__ = [
    "BENCHMARKS",
    "BENCHMARKS_ENV",
    "Problem",
    "load_benchmark",
    "resolve_data_dir",
]

#: Names of the benchmarks `load_benchmark` knows, in the order the metric lists them.
BENCHMARKS = (
    "verilog-eval-v1-human",
    "verilog-eval-v1-machine",
    "verilog-eval-v2-spec-to-rtl",
    "verilog-eval-v2-code-complete",
    "rtllm-v1.1",
    "rtllm-v2.0",
    "custom",
)

#: Environment variable naming the benchmark location when `data_dir` is not given.
BENCHMARKS_ENV = "SALV_TRL_BENCHMARKS"

# Sub-folders (beside or inside `data_dir`) where each benchmark's checkout is looked for.
_CHECKOUT_NAMES = {
    "verilog-eval-v1-human": ("verilog-eval-v1", "verilog-eval"),
    "verilog-eval-v1-machine": ("verilog-eval-v1", "verilog-eval"),
    "verilog-eval-v2-spec-to-rtl": ("verilog-eval-v2", "verilog-eval"),
    "verilog-eval-v2-code-complete": ("verilog-eval-v2", "verilog-eval"),
    "rtllm-v1.1": ("RTLLM-v1.1", "RTLLM"),
    "rtllm-v2.0": ("RTLLM-v2.0", "RTLLM"),
}

# VerilogEval v2 system messages and instructions, from the benchmark's `scripts/sv-generate`.
_V2_SYSTEM = {
    "spec-to-rtl": "You are a Verilog RTL designer that only writes code using correct Verilog syntax.",
    "code-complete-iccad2023": (
        "You only complete chats with syntax correct Verilog code. "
        "End the Verilog module code completion with 'endmodule'. "
        "Do not include module, input and output definitions."
    ),
}
_V2_CODE_COMPLETE_PREFIX = (
    "\n// Implement the Verilog module based on the following description. Assume that signals are positive "
    "clock/clk triggered unless otherwise stated.\n"
)
_V2_NO_EXPLAIN = (
    "\nEnclose your code with [BEGIN] and [DONE]. Only output the code snippet\n"
    "and do NOT output anything else.\n"
)
_V2_RULES = """
Here are some additional rules and coding conventions.

 - Declare all ports and signals as logic; do not to use wire or reg.

 - For combinational logic with an always block do not explicitly specify
   the sensitivity list; instead use always @(*).

 - All sized numeric constants must have a size greater than zero
   (e.g, 0'b0 is not a valid expression).

 - An always block must read at least one signal otherwise it will never
   be executed; use an assign statement instead of an always block in
   situations where there is no need to read any signals.

 - if the module uses a synchronous reset signal, this means the reset
   signal is sampled with respect to the clock. When implementing a
   synchronous reset signal, do not include posedge reset in the
   sensitivity list of any sequential always block.
"""


@dataclass(frozen=True, kw_only=True)
class Problem(Task):
    """One benchmark problem: the [`~salv_trl.data.tasks.Task`] plus what generation and the official harness
    need.

    Args:
        task_id (`str`): The benchmark's id (`Prob001_zero`, `gatesv`, `adder_8bit`, ...).
        prompt (`str`): The user message in the benchmark's official format.
        reference (`str`): The reference design as the benchmark ships it (before any rename).
        testbench (`str`): The benchmark's testbench for this problem (empty for reference-only custom tasks).
        top (`str`): Module name the testbench instantiates for the candidate (`TopModule`, `top_module`, the
            RTLLM design name).
        benchmark (`str`): One of [`BENCHMARKS`].
        system_prompt (`str`): The official system message, if the benchmark has one.
        description (`str`): The natural-language specification alone.
        interface (`str`): For completion-style benchmarks (VerilogEval v1, v2 code-complete), the module
            header a completion continues; the harness prepends it to answers that do not declare `top`
            themselves.
        reference_top (`str`): Name of the reference's top module as written in `reference` (`RefModule`,
            `verified_adder_8bit`, ...); the harness renames it where the testbench expects another name.
        support_files (`Mapping[str, str]`): Data files the testbench reads from its working directory
            (RTLLM).
    """

    testbench: str = ""
    top: str
    benchmark: str
    system_prompt: str = ""
    description: str = ""
    interface: str = ""
    reference_top: str = ""
    support_files: Mapping[str, str] = field(default_factory=dict)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
    """`data_dir`, else the `SALV_TRL_BENCHMARKS` environment variable; a clear error when neither is set."""
    if data_dir is None:
        data_dir = os.environ.get(BENCHMARKS_ENV)
    if not data_dir:
        raise ValueError(
            "no benchmark location: pass data_dir= (a local checkout or a Hub dataset id) "
            f"or set {BENCHMARKS_ENV}"
        )
    return os.fspath(data_dir)


def _checkout(name: str, data_dir: Path, marker: str) -> Path:
    """The folder of `name`'s checkout: `data_dir` itself or one of its known sub-folders, found by
    `marker`."""
    for candidate in [data_dir / sub for sub in _CHECKOUT_NAMES[name]] + [data_dir]:
        if any(candidate.glob(marker)):
            return candidate
    raise FileNotFoundError(f"{name}: no checkout found under {data_dir} (looked for {marker})")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _first(root: Path, *patterns: str) -> Path:
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(f"none of {patterns} under {root}")


def _load_v1(name: str, data_dir: Path) -> list[Problem]:
    split = "Human" if name.endswith("human") else "Machine"
    root = _checkout(name, data_dir, f"data/VerilogEval_{split}.jsonl*")
    rows = _read_jsonl(_first(root, f"data/VerilogEval_{split}.jsonl", f"data/VerilogEval_{split}.jsonl.gz"))
    descriptions_file = _first(
        root,
        f"descriptions/VerilogDescription_{split}.jsonl",
        f"descriptions/VerilogDescription_{split}.jsonl.gz",
    )
    descriptions = {row["task_id"]: row["detail_description"] for row in _read_jsonl(descriptions_file)}
    problems = []
    for row in rows:
        description = descriptions[row["task_id"]].strip()
        problems.append(
            Problem(
                task_id=row["task_id"],
                prompt=f"{description}\n\n{row['prompt']}",
                reference=row["prompt"] + row["canonical_solution"],
                testbench=row["test"],
                top="top_module",
                benchmark=name,
                description=description,
                interface=row["prompt"],
                reference_top="top_module",
            )
        )
    return problems


def _v2_prompt(task: str, spec: str, prefix: str, rules: bool, explain: bool) -> str:
    """The user message of VerilogEval v2's `sv-generate` for one problem."""
    if task == "code-complete-iccad2023":
        lines, commented = [], True
        for line in spec.splitlines():
            if "module TopModule" in line:
                lines.append("")
                commented = False
            lines.append(f"// {line}" if commented else line)
        return prefix + _V2_CODE_COMPLETE_PREFIX + "\n".join(lines)
    prompt = prefix + "\nQuestion:\n" + spec.strip() + "\n"
    if rules:
        prompt += _V2_RULES
    if not explain:
        prompt = prompt.rstrip() + "\n" + _V2_NO_EXPLAIN
    return prompt + "\nAnswer:\n"


def _load_v2(name: str, data_dir: Path, examples: int, rules: bool, explain: bool) -> list[Problem]:
    task = "spec-to-rtl" if name.endswith("spec-to-rtl") else "code-complete-iccad2023"
    folder = f"dataset_{task}"
    root = _checkout(name, data_dir, f"{folder}/*_prompt.txt")
    dataset = root / folder
    prefix = ""
    if examples:
        if not 1 <= examples <= 4:
            raise ValueError(f"examples must be between 0 and 4 (the official shots), got {examples}")
        shots = root / "scripts" / f"verilog-example-prefix_{task}_{examples}-shot.txt"
        if not shots.is_file():
            raise FileNotFoundError(
                f"in-context examples not found: {shots} (they ship in the benchmark's scripts/)"
            )
        prefix = _read(shots)
    listed = dataset / "problems.txt"
    if listed.is_file():
        ids = [line.strip() for line in _read(listed).splitlines() if line.strip()]
    else:
        ids = sorted(p.name.removesuffix("_prompt.txt") for p in dataset.glob("*_prompt.txt"))
    problems = []
    for task_id in ids:
        spec = _read(dataset / f"{task_id}_prompt.txt")
        interface = dataset / f"{task_id}_ifc.txt"
        problems.append(
            Problem(
                task_id=task_id,
                prompt=_v2_prompt(task, spec, prefix, rules, explain),
                reference=_read(dataset / f"{task_id}_ref.sv"),
                testbench=_read(dataset / f"{task_id}_test.sv"),
                top="TopModule",
                benchmark=name,
                system_prompt=_V2_SYSTEM[task],
                description=spec.strip(),
                interface=_read(interface) if task != "spec-to-rtl" and interface.is_file() else "",
                reference_top="RefModule",
            )
        )
    return problems


def _instantiated(testbench: str, name: str) -> bool:
    """Whether `testbench` instantiates a module called `name` (optionally with a parameter list)."""
    return (
        re.search(rf"^\s*{re.escape(name)}\s*(?:#\s*\(|[A-Za-z_][\w$]*\s*\()", testbench, re.MULTILINE)
        is not None
    )


def _rtllm_top(folder: Path, description: str, testbench: str) -> str:
    """The design name the RTLLM testbench instantiates: the description's "Module name", else the folder
    name."""
    named = re.search(r"Module name:\s*([A-Za-z_][\w$]*)", description)
    for name in ([named.group(1)] if named else []) + [folder.name]:
        if _instantiated(testbench, name):
            return name
    raise ValueError(f"{folder}: cannot tell which module the testbench instantiates")


def _load_rtllm(name: str, data_dir: Path) -> list[Problem]:
    root = _checkout(name, data_dir, "**/testbench.v")
    problems = []
    for testbench_file in sorted(root.rglob("testbench.v"), key=lambda p: p.parent.name):
        folder = testbench_file.parent
        references = sorted(folder.glob("verified_*.v"))
        if not references:
            continue
        description = _read(folder / "design_description.txt")
        testbench = _read(testbench_file)
        top = _rtllm_top(folder, description, testbench)
        reference = _read(references[0])
        support = {
            p.name: _read(p)
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix in {".txt", ".dat"} and p.name != "design_description.txt"
        }
        problems.append(
            Problem(
                task_id=folder.name,
                prompt=description,
                reference=reference,
                testbench=testbench,
                top=top,
                benchmark=name,
                description=description.strip(),
                reference_top=task_top(reference, top),
                support_files=support,
            )
        )
    return problems


def _task_rows(source: str) -> list[dict]:
    """Rows of a tasks dataset: a local `.jsonl` / `.json` file, a folder of them, or a Hub dataset id."""
    path = Path(source)
    if path.is_file():
        return _read_jsonl(path) if ".jsonl" in path.suffixes else json.loads(_read(path))
    if path.is_dir():
        return [row for file in sorted(path.glob("*.jsonl")) for row in _read_jsonl(file)]
    from datasets import load_dataset  # only for Hub datasets: keeps the loaders importable without it

    dataset = load_dataset(source)
    split = "test" if "test" in dataset else next(iter(dataset))
    return list(dataset[split])


def _load_rows(name: str, source: str) -> list[Problem]:
    """Problems from rows of the tasks schema: a `custom` task set, or a benchmark stored on the Hub.

    `top` defaults to the reference's top ([`~salv_trl.data.tasks.task_top`]) for custom tasks, else to the
    benchmark's convention (`top_module` for VerilogEval v1, `TopModule` otherwise).
    """
    conventional = "top_module" if name.startswith("verilog-eval-v1") else "TopModule"
    problems = []
    for row in _task_rows(source):
        if not {"task_id", "prompt"} <= set(row) or not (row.get("reference") or row.get("testbench")):
            raise ValueError(
                f"task {row.get('task_id', '?')}: needs task_id, prompt and a reference or testbench"
            )
        reference = row.get("reference") or ""
        top = row.get("top") or (None if name == "custom" else conventional)
        try:
            reference_top = task_top(reference, top) if reference.strip() else None
        except VerilogInputError:  # no module: the harness reports it per sample
            reference_top = None
        top = top or reference_top or conventional
        problems.append(
            Problem(
                task_id=str(row["task_id"]),
                prompt=row["prompt"],
                reference=reference,
                testbench=row.get("testbench") or "",
                top=top,
                benchmark=name,
                system_prompt=row.get("system_prompt") or "",
                description=row.get("description") or "",
                interface=row.get("interface") or "",
                reference_top=row.get("reference_top") or reference_top or top,
            )
        )
    return problems


def load_benchmark(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    examples: int = 0,
    rules: bool = False,
    explain: bool = False,
) -> list[Problem]:
    """Load a benchmark's problems with their official prompts.

    Args:
        name (`str`): One of [`BENCHMARKS`].
        data_dir (`str` or `os.PathLike`, *optional*): A local checkout in the benchmark's original layout, a
            folder holding such checkouts (`verilog-eval-v1/`, `verilog-eval-v2/`, `RTLLM-v1.1/`,
            `RTLLM-v2.0/`), or a Hub dataset id with the tasks schema. For `custom`, a tasks `.jsonl` /
            `.json` file, a folder of `.jsonl` files or a Hub dataset id. Defaults to the
            `SALV_TRL_BENCHMARKS` environment variable.
        examples (`int`, *optional*, defaults to `0`): VerilogEval v2 only: number of official in-context
            examples.
        rules (`bool`, *optional*, defaults to `False`): VerilogEval v2 spec-to-rtl only: add the official
            rules.
        explain (`bool`, *optional*, defaults to `False`): VerilogEval v2 spec-to-rtl only: let the model
            explain (drops the `[BEGIN]` / `[DONE]` instruction).

    Returns:
        `list[Problem]`: The problems, in the benchmark's order.

    Example:

    The official benchmarks are read from their checkouts, which the package does not ship (so these lines
    are not run as tests):

    ```python
    >>> from salv_trl.data.benchmarks import load_benchmark
    >>> problems = load_benchmark("rtllm-v1.1", "../shared/benchmarks")  # doctest: +SKIP
    >>> problems[0].task_id, problems[0].top  # doctest: +SKIP
    ('JC_counter', 'JC_counter')

    ```

    A `custom` task set is a file of rows of the tasks schema, such as the synthetic tasks:

    ```python
    >>> import os, tempfile
    >>> from salv_trl.synthetic import generate_tasks, tasks_dataset
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "tasks.jsonl")
    >>> _ = tasks_dataset(generate_tasks(3, split="test")).to_json(path)  # JSON lines
    >>> problems = load_benchmark("custom", path)
    >>> len(problems), problems[0].top, problems[0].prompt.splitlines()[0]
    (3, 'top_module', 'Write a Verilog module named top_module.')
    >>> folder.cleanup()

    ```
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    source = resolve_data_dir(data_dir)
    if name == "custom":
        return _load_rows(name, source)
    path = Path(source)
    if not path.exists():
        if re.fullmatch(r"[\w.-]+/[\w.-]+", source):
            return _load_rows(name, source)
        raise FileNotFoundError(f"benchmark location not found: {source}")
    if name.startswith("verilog-eval-v1"):
        return _load_v1(name, path)
    if name.startswith("verilog-eval-v2"):
        return _load_v2(name, path, examples, rules, explain)
    return _load_rtllm(name, path)
