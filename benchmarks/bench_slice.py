"""Slicing speed: salv-trl's pyslang slicer against the original release's route (yosys AST dump per module).

Over every benchmark reference design (VerilogEval v2 `*_ref.sv`, RTLLM v1.1/v2.0 `verified_*.v`), prints the
median and total milliseconds per module of `slice_signals` (all outputs of the module, parse included) and of
spawning `yosys -p "read_verilog -sv -dump_ast1 FILE"`, and their ratio, measured in the same run.
Targets: median <= 2 ms per module, and >= 5x faster than the yosys route.

    python benchmarks/bench_slice.py [--benchmarks ../shared/benchmarks] [--repeat 3] [--yosys-limit N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import BENCHMARKS, reference_designs  # noqa: E402

from salv_trl.hdl.slicing import slice_signals  # noqa: E402


def time_slicer(designs, repeat: int) -> list[float]:
    """Per-module milliseconds: the best of `repeat` runs (after one warm-up pass over all modules)."""
    texts = [(design.text, design.top) for design in designs]
    for text, top in texts:
        slice_signals(text, top)
    timings = []
    for text, top in texts:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            slice_signals(text, top)
            best = min(best, time.perf_counter() - start)
        timings.append(best * 1000)
    return timings


def time_yosys(designs) -> tuple[list[float], int]:
    """Per-module milliseconds of one yosys process per module, and how many of them failed."""
    timings, failures = [], 0
    for design in designs:
        start = time.perf_counter()
        result = subprocess.run(
            ["yosys", "-p", f"read_verilog -sv -dump_ast1 {design.path}"], capture_output=True, check=False
        )
        timings.append((time.perf_counter() - start) * 1000)
        failures += result.returncode != 0
    return timings, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per module for salv-trl (best kept)")
    parser.add_argument("--yosys-limit", type=int, default=None, help="time yosys on the first N modules")
    args = parser.parse_args()
    designs = reference_designs()
    if not designs:
        print(f"no benchmark references found under {BENCHMARKS}")
        return 1
    if shutil.which("yosys") is None:
        print("yosys is not installed (Debian package 'yosys'): the baseline cannot be measured")
        return 1
    ours = time_slicer(designs, args.repeat)
    yosys, failures = time_yosys(designs[: args.yosys_limit])
    outputs = sum(len(slice_signals(design.text, design.top)) for design in designs)
    print(f"{len(designs)} reference modules, {outputs} outputs sliced")
    print(f"{'route':<56} {'median ms/module':>17} {'total ms':>10}")
    print(f"{'salv-trl slice_signals (pyslang)':<56} {statistics.median(ours):>17.3f} {sum(ours):>10.1f}")
    label = f"yosys read_verilog -dump_ast1 ({len(yosys)} spawns, {failures} failed)"
    print(f"{label:<56} {statistics.median(yosys):>17.3f} {sum(yosys):>10.1f}")
    median_ratio = statistics.median(yosys) / statistics.median(ours)
    total_ratio = sum(yosys) / sum(ours[: len(yosys)])
    print(f"speed-up: {median_ratio:.1f}x on the median, {total_ratio:.1f}x on the total")
    met = statistics.median(ours) <= 2.0 and min(median_ratio, total_ratio) >= 5.0
    print(f"targets (median <= 2 ms, >= 5x faster): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
