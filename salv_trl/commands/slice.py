"""`salv-trl slice`: print the backward dependency slice of each output of a Verilog module.

Example:

```bash
salv-trl slice examples/two_outputs.v               # each output's slice, rendered as a module
salv-trl slice design.sv --top TopModule --json     # spans, dependencies and renders as JSON
```
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="Verilog / SystemVerilog file ('-' reads standard input)")
    parser.add_argument("--top", help="module to slice (default: inferred; a testbench never is)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print {output: {core_spans, spans, depends_on, warnings, render}} as JSON",
    )


def run(args: argparse.Namespace) -> int:
    from ..hdl.slicing import slice_signals

    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    slices = slice_signals(text, top=args.top)
    if args.json:
        payload = {
            output: {
                "core_spans": piece.core_spans,
                "spans": piece.spans,
                "depends_on": list(piece.depends_on),
                "warnings": piece.warnings,
                "render": piece.render(),
            }
            for output, piece in slices.items()
        }
        print(json.dumps(payload, indent=2))
        return 0
    for output, piece in slices.items():
        print(f"// ===== slice of output {output}: depends on {', '.join(piece.depends_on) or 'nothing'}")
        for warning in piece.warnings:
            print(f"// warning: {warning}")
        print(piece.render().strip("\n"), end="\n\n")
    return 0
