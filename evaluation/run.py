"""Generate completions with any causal LM and score them on a Verilog benchmark.

Samples `n` completions per problem with the benchmark's official prompt (transformers `generate`, or vLLM
when it is installed and `--engine vllm|auto`), scores them with the official harness through the sandbox,
writes `samples.jsonl`, `results.jsonl` and `summary.json` to `--output-dir`, prints the pass@k table, and
optionally writes the results into a model card.

The VerilogEval v2 protocols: `--protocol greedy` (n=1, greedy) and `--protocol sampled` (n=20, temperature
0.85, top_p 0.95). The benchmark's official system message (VerilogEval v2) goes before every prompt.

Example:
```
SALV_TRL_ALLOW_CODE_EXECUTION=1 python evaluation/run.py --model Qwen/Qwen2.5-Coder-7B-Instruct \\
    --benchmark rtllm-v1.1 --data-dir ../shared/benchmarks --n 5 --temperature 0.8 --k 1 5 \\
    --output-dir out/rtllm
```
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from salv_trl.evaluation.benchmarks import BENCHMARKS, load_benchmark
from salv_trl.evaluation.official import require_opt_in
from salv_trl.evaluation.report import evaluate_completions, format_table

PROTOCOLS = {
    "greedy": {"n": 1, "temperature": 0.0, "top_p": 1.0},
    "sampled": {"n": 20, "temperature": 0.85, "top_p": 0.95},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hub id or local path of a causal LM")
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    parser.add_argument(
        "--data-dir", help="benchmark checkout(s) or Hub dataset id (default: $SALV_TRL_BENCHMARKS)"
    )
    parser.add_argument(
        "--problems", nargs="*", help="problem ids, or a number N for the first N (default: all)"
    )
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), help="VerilogEval v2 sampling protocol")
    parser.add_argument("--n", type=int, default=1, help="completions per problem")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 means greedy decoding")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generation-batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--engine", choices=("auto", "transformers", "vllm"), default="auto")
    parser.add_argument("--examples", type=int, default=0, help="VerilogEval v2 in-context examples (0-4)")
    parser.add_argument(
        "--rules", action="store_true", help="VerilogEval v2 spec-to-rtl: add the official rules"
    )
    parser.add_argument("--k", type=int, nargs="+", default=[1])
    parser.add_argument("--workers", type=int, help="parallel simulation sandboxes (default: CPU count)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument(
        "--model-card", action="store_true", help="write README.md with the results to output-dir"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _select(problems, wanted):
    if not wanted:
        return problems
    if len(wanted) == 1 and wanted[0].isdigit():
        return problems[: int(wanted[0])]
    by_id = {p.task_id: p for p in problems}
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise ValueError(f"unknown problem ids: {', '.join(missing)}")
    return [by_id[w] for w in wanted]


def generate(args, prompts: list[str], system: str | None = None) -> list[list[str]]:
    """Completions for `prompts`, after the `system` message if any, with the chosen engine."""
    settings = {"n": args.n, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens, "seed": args.seed, "system": system}  # fmt: skip
    engine = args.engine
    if engine == "auto":
        # vLLM cannot load a bare LoRA adapter (recipes/dpo.py with use_peft); transformers + peft can
        adapter = Path(args.model, "adapter_config.json").is_file()
        engine = "vllm" if importlib.util.find_spec("vllm") is not None and not adapter else "transformers"
    if engine == "vllm":
        from vllm import LLM

        from salv_trl.data.sampling import model_generation_config, sample_completions_vllm

        llm = LLM(model=args.model, seed=args.seed)
        return sample_completions_vllm(
            llm, prompts, generation_config=model_generation_config(args.model), **settings
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from salv_trl.data.sampling import sample_completions

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    if torch.cuda.is_available():
        model = model.to("cuda")
    return sample_completions(model, tokenizer, prompts, batch_size=args.generation_batch_size,
                              progress=not args.no_progress, **settings)  # fmt: skip


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.protocol:
        for key, value in PROTOCOLS[args.protocol].items():
            setattr(args, key, value)
    require_opt_in()  # fail before spending time on generation
    problems = _select(
        load_benchmark(args.benchmark, args.data_dir, examples=args.examples, rules=args.rules), args.problems
    )
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    systems = {p.system_prompt for p in problems}
    if len(systems) > 1:
        raise ValueError(f"the selected problems have {len(systems)} different system messages")
    system = next(iter(systems), "") or None
    completions = generate(args, [p.prompt for p in problems], system)
    _write_jsonl(output_dir / "samples.jsonl", (
        {"task_id": p.task_id, "sample_index": j, "prompt": p.prompt, "completion": c}
        for p, samples in zip(problems, completions, strict=True) for j, c in enumerate(samples)
    ))  # fmt: skip

    report = evaluate_completions(
        args.benchmark,
        completions,
        [p.task_id for p in problems],
        k=args.k,
        problems=problems,
        workers=args.workers,
        progress=not args.no_progress,
    )
    _write_jsonl(output_dir / "results.jsonl", (
        {"task_id": problem.task_id, "sample_index": j, "scorable": problem.scorable, **sample}
        for problem in report.problems for j, sample in enumerate(problem.samples)
    ))  # fmt: skip
    summary = report.to_dict(per_problem=False)
    summary["settings"] = {
        key: getattr(args, key)
        for key in ("model", "n", "temperature", "top_p", "max_new_tokens", "seed", "examples", "rules")
    }
    summary["settings"]["system"] = system
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_table(report))

    if args.model_card:
        from salv_trl.model_card import render_model_card

        scores = {key: 100 * value for key, value in report.pass_at_k.items()}
        card = render_model_card(args.model, results={args.benchmark: scores})
        card.save(str(output_dir / "README.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
