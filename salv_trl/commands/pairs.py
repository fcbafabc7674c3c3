"""`salv-trl pairs`: verified rollouts → signal-aware preference pairs (the `pairs` config of a dataset
folder).

Example:

```bash
salv-trl pairs data/salv --max-pairs-per-task 20 --tokenizer Qwen/Qwen2.5-Coder-7B-Instruct
salv-trl pairs data/salv --mode module --output data/salv-module   # ablation: module-level pairs
salv-trl pairs data/salv --no-masks --output data/salv-nomask       # ablation: signal pairs, whole sequences
```
Each run writes the `pairs` config of FOLDER, or of `--output` (a new folder with the pairs and the record of
how the rollouts were made), so the pair sets of several modes sit side by side.
"""

from __future__ import annotations

import argparse

from . import _dataset_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", help="dataset folder with verified rollouts (salv-trl sample + salv-trl verify)"
    )
    parser.add_argument(
        "--mode",
        choices=("signal", "module"),
        default="signal",
        help="signal: contrast-signal pairs with slice spans, between samples that simulated (a sample "
        "that did not simulate is only paired with --not-simulated-pairs); module: ablation, fully correct "
        "vs failing, whole sequences (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        metavar="FOLDER",
        help="write the pairs config to this dataset folder instead of FOLDER (e.g. one per mode)",
    )
    parser.add_argument("--max-pairs-per-task", type=int, default=None, help="seeded random subset per task")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep identical completions of a task")
    parser.add_argument(
        "--no-interface",
        action="store_true",
        help="spans without the module interface (header, port/parameter declarations)",
    )
    parser.add_argument(
        "--missing-slice",
        choices=("drop", "whole"),
        default="drop",
        help="when a contrast signal has no slice: drop the pair or use the whole completion "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-masks", action="store_true", help="ablation: signal pairs with whole-sequence spans"
    )
    parser.add_argument(
        "--without-no-code-pairs",
        dest="no_code_pairs",
        action="store_false",
        help="do not reject completions without code against fully correct ones",
    )
    parser.add_argument(
        "--not-simulated-pairs",
        action="store_true",
        help="also reject samples that have code but did not simulate (syntax, interface, compile or runtime "
        "errors, timeouts, refusals) against fully correct ones, over the whole sequence; off by default, as "
        "in the paper, where such samples give no pair",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of --max-pairs-per-task (default: %(default)s)"
    )
    parser.add_argument(
        "--tokenizer",
        help="count the masked-in share of completions in this tokenizer's tokens "
        "(Hub id or path; characters otherwise)",
    )
    parser.add_argument(
        "--require-proof",
        action="store_true",
        help="only contrasts formal verification agrees with (rollouts verified with --method formal/both)",
    )
    _dataset_options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..data.pairs import PairOptions
    from ..data.stages import pairs_stage

    options = PairOptions(
        mode=args.mode,
        max_pairs_per_task=args.max_pairs_per_task,
        drop_duplicates=not args.keep_duplicates,
        include_interface=not args.no_interface,
        missing_slice=args.missing_slice,
        masks=not args.no_masks,
        no_code_pairs=args.no_code_pairs,
        not_simulated_pairs=args.not_simulated_pairs,
        seed=args.seed,
        require_proof=args.require_proof,
    )
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    output = args.output or args.folder
    pairs = pairs_stage(
        args.folder,
        options,
        output=output,
        tokenizer=tokenizer,
        tokenizer_name=args.tokenizer,
        progress=not args.no_progress,
    )
    print(f"{len(pairs)} pairs in {output}")
    _dataset_options.push(args, output)
    return 0
