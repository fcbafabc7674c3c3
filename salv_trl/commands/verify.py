"""`salv-trl verify`: judge candidate Verilog files against a reference, output signal by output signal.

```
salv-trl verify candidate.v other.v --reference ref.v [--testbench tb.v --top TopModule] [--json]
salv-trl verify --dataset FOLDER [--ray [ADDRESS]]     # rollouts of a dataset folder, see verify_dataset.py
```

A candidate file may be a Verilog file or a model's answer (a markdown file with prose and fenced code): its
code is extracted by the rule of every entry point ([`salv_trl.hdl.extract.extract_code`]). Prints one table
per candidate (status, then each output's mismatches / samples), or JSON with `--json`. `--method formal|both`
adds a formal per-output check (Yosys + ABC, see `salv_trl.hdl.formal`). Exit status 0 when every candidate
passes (no output wrong, at least one shown correct), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salv_trl.commands import verify_dataset
from salv_trl.hdl.extract import extract_code
from salv_trl.hdl.formal import DEFAULT_DEPTH
from salv_trl.hdl.testbench import RESET_EVERY
from salv_trl.hdl.verify import METHODS, ModuleVerdict, SignalVerdict, VerifyJob, verify_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "candidates", nargs="*", type=Path, help="candidate files: Verilog, or model answers with fenced code"
    )
    parser.add_argument("--reference", "-r", type=Path, help="reference Verilog file")
    parser.add_argument("--testbench", type=Path, help="use this testbench instead of random co-simulation")
    parser.add_argument("--top", help="the task's top module name (default: the reference's top)")
    parser.add_argument(
        "--vectors", type=int, default=1000, help="random vectors or clock cycles (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="stimulus seed (default 0)")
    parser.add_argument("--simulator", default="icarus", choices=["icarus", "verilator"])
    parser.add_argument(
        "--method",
        default="random",
        choices=METHODS,
        help="random co-simulation, formal equivalence per output (Yosys + ABC), or both (formal refines "
        "random; default: %(default)s)",
    )
    parser.add_argument(
        "--reset-every",
        type=int,
        default=RESET_EVERY,
        help="random route: a reset pulse in the middle cycle and on about one cycle in this many, a power "
        "of two; 0: only at the start (default: %(default)s)",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_DEPTH,
        help="formal: cycles of bounded model checking when no proof is found (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per simulator step (default 10)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    verify_dataset.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.vectors < 1:
        raise ValueError("--vectors must be at least 1")
    if args.dataset:
        return verify_dataset.run(args)
    if not args.candidates or args.reference is None:
        raise ValueError("give candidate files and --reference, or --dataset FOLDER")
    reference = args.reference.read_text(encoding="utf-8")
    testbench = args.testbench.read_text(encoding="utf-8") if args.testbench else None
    jobs = [
        VerifyJob(
            _code(path),
            reference,
            testbench,
            args.top,
            args.vectors,
            args.seed,
            args.simulator,
            args.method,
            args.reset_every,
            args.depth,
        )
        for path in args.candidates
    ]
    verdicts = verify_many(
        jobs, workers=args.workers, progress=len(jobs) > 1 and not args.json, timeout=args.timeout
    )
    if args.json:
        rows = [
            {"candidate": str(path), **v.to_dict()} for path, v in zip(args.candidates, verdicts, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    else:
        for path, verdict in zip(args.candidates, verdicts, strict=True):
            print(_table(str(path), verdict))
    return 0 if all(v.passed for v in verdicts) else 1


def _code(path: Path) -> str | bytes:
    """The code of a candidate file, extracted as from any model completion (empty when it has none: the
    verdict is `no_code`); the bytes as they are when they are not UTF-8 text, which the verifier reports."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    found = extract_code(text)
    return found.code if found else ""


def _table(name: str, verdict: ModuleVerdict) -> str:
    lines = [f"{name}: {verdict.status.value}" + (" (passed)" if verdict.passed else "")]
    if verdict.signals:
        width = max(6, *(len(s) for s in verdict.signals))
        lines.append(f"  {'output':<{width}}  {'mismatches':>10}  {'samples':>7}  verdict")
        for signal, v in verdict.signals.items():
            lines.append(f"  {signal:<{width}}  {v.mismatches:>10}  {v.samples:>7}  {_label(v)}")
    if verdict.detail:
        lines += ["  " + line for line in verdict.detail.splitlines()[:20]]
    return "\n".join(lines)


def _label(verdict: SignalVerdict) -> str:
    label = "ok" if verdict.correct else "WRONG" if verdict.wrong else "untested"
    if verdict.proof is not None:
        bound = f"({verdict.depth})" if verdict.depth is not None else ""
        label += f"  {verdict.proof.value}{bound}" + (f": {verdict.reason}" if verdict.reason else "")
    return label
