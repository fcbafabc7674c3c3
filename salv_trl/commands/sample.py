"""`salv-trl sample`: tasks → N completions per task (the `tasks` and `rollouts` configs of a dataset folder).

Example:

```bash
salv-trl sample tasks.jsonl --model Qwen/Qwen2.5-Coder-7B-Instruct --output data/salv
salv-trl sample ../verilog-eval --benchmark verilog-eval-v2 --model ./sft --output data/ve2 --backend vllm
```
Re-running after an interruption resumes where it stopped. Prompts go through the model's chat template when
its tokenizer has one (after `--system`, if given); the stage records how, and `salv-trl pairs` writes the
same conversation for training.
"""

from __future__ import annotations

import argparse
from functools import partial

from ..data.sampling import SamplingSettings
from . import _dataset_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SamplingSettings()
    parser.add_argument(
        "tasks", help="task file (.jsonl/.json/.parquet/.csv), dataset folder, benchmark folder, or Hub id"
    )
    parser.add_argument(
        "--benchmark", help="benchmark name when TASKS is a benchmark checkout in its original layout"
    )
    parser.add_argument("--model", required=True, help="Hub id or local path of the causal LM")
    parser.add_argument("--output", required=True, help="dataset folder to write (tasks + rollouts configs)")
    parser.add_argument(
        "--n", type=int, default=defaults.n, help="completions per task (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=float, default=defaults.temperature, help="0 = greedy (default: %(default)s)"
    )
    parser.add_argument("--top-p", type=float, default=defaults.top_p, help="default: %(default)s")
    parser.add_argument(
        "--max-new-tokens", type=int, default=defaults.max_new_tokens, help="default: %(default)s"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="tasks per generate call (default: %(default)s)",
    )
    parser.add_argument("--system", help="system message before every prompt (default: none)")
    parser.add_argument(
        "--backend", choices=("transformers", "vllm"), default="transformers", help="default: %(default)s"
    )
    parser.add_argument(
        "--dtype", default="auto", help="model dtype for transformers, e.g. bfloat16 (default: %(default)s)"
    )
    parser.add_argument(
        "--device", default=None, help="transformers device, e.g. cuda:0 (default: cuda if available)"
    )
    _dataset_options.add_arguments(parser)


def _transformers_generate(args: argparse.Namespace, settings: SamplingSettings):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..data.sampling import sample_completions

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=args.dtype).to(device).eval()
    return tokenizer, partial(
        sample_completions, model, tokenizer, progress=False, system=args.system, **settings.to_dict()
    )


def run(args: argparse.Namespace) -> int:
    from ..data.sampling import PromptFormat, model_generation_config, sample_completions_vllm
    from ..data.stages import sample_stage, save_tasks
    from ..data.tasks import load_tasks

    settings = SamplingSettings(
        args.n, args.temperature, args.top_p, args.max_new_tokens, args.seed, args.batch_size
    )
    save_tasks(
        load_tasks(args.tasks, benchmark=args.benchmark),
        args.output,
        source=args.benchmark or str(args.tasks),
    )
    if args.backend == "vllm":
        try:
            from vllm import LLM
        except ImportError as error:
            raise ValueError("--backend vllm needs vLLM: pip install 'salv-trl[vllm]'") from error
        llm = LLM(model=args.model, seed=settings.seed)
        tokenizer = llm.get_tokenizer()
        # vLLM schedules its own batches
        vllm_settings = {k: v for k, v in settings.to_dict().items() if k != "batch_size"}
        generate = partial(
            sample_completions_vllm,
            llm,
            system=args.system,
            generation_config=model_generation_config(args.model),
            **vllm_settings,
        )
    else:
        tokenizer, generate = _transformers_generate(args, settings)
    info = {
        "model": args.model,
        "backend": args.backend,
        **settings.to_dict(),
        "prompt_format": PromptFormat.of(tokenizer, args.system).to_dict(),
    }
    rollouts = sample_stage(
        args.output,
        generate,
        n=settings.n,
        batch_size=settings.batch_size,
        info=info,
        progress=not args.no_progress,
    )
    print(f"{len(rollouts)} rollouts in {args.output}")
    _dataset_options.push(args, args.output)
    return 0
