"""`salv-trl <verb>`: the command-line face of the library.

Each verb lives in `salv_trl/commands/<verb>.py` (or the module `MODULES` names) and exposes
`add_arguments(parser)` and `run(args) -> int`. Verbs are imported only when called, so `salv-trl slice` never
pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

VERBS: dict[str, str] = {
    "slice": "Print each output's backward dependency slice of a Verilog module.",
    "verify": "Judge candidate modules against a reference, output signal by output signal.",
    "sample": "Sample N completions per task with a causal LM.",
    "import": "Import completions made elsewhere as rollouts, joined to their tasks.",
    "pairs": "Build signal-aware preference pairs from verified rollouts.",
}
#: Verbs whose module is not named after them (`import` is a Python keyword).
MODULES = {"import": "import_rollouts"}


def _command(verb: str):
    return importlib.import_module(f"salv_trl.commands.{MODULES.get(verb, verb)}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salv-trl", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    requested = next((a for a in argv if not a.startswith("-")), None)
    for verb, help_text in VERBS.items():
        sub = subparsers.add_parser(verb, help=help_text, description=help_text)
        if verb == requested:  # only the called verb imports its module (and its dependencies)
            _command(verb).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "no_progress", False):
        from .commands._dataset_options import hide_progress

        hide_progress()
    try:
        return _command(args.verb).run(args)
    except (ValueError, OSError) as error:  # bad input: a clear message, never a stack trace
        print(f"salv-trl {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"salv-trl {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
