"""
The paper's 7B recipe on one GPU, with nothing downloaded: a randomly initialised model with
Qwen2.5-Coder-7B-Instruct's architecture in bf16, the LoRA and trainer settings of
`recipes/Qwen2.5-Coder-7B-Instruct/dpo/config_salv.yaml` (read by the recipe's parser), 20 steps of
`SignalAwareDPOTrainer` and 20 of trl's `DPOTrainer` on the same synthetic pairs at the recipe's sequence
length (2048 tokens), then greedy `generate` with the trained model merged: step time, tokens per second and
peak memory side by side.

```bash
HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/gpu/bench_7b.py --output bench_7b.json   # one GPU, minutes
python benchmarks/gpu/bench_7b.py --tiny                                                # CPU, seconds
```

The tokenizer is trained in-process on the pairs ([`salv_trl.tiny.train_tokenizer`]); its ids index the
model's full 152064-row embedding. Each pair is a synthetic one ([`salv_trl.tiny.tiny_preference_rows`]) with
its completions repeated until they pass the sequence length, spans included, so every sequence is cut at
exactly `max_length` tokens and about a fifth of the completion tokens are signal tokens. One step is one pair
(`gradient_accumulation_steps` 1 instead of the recipe's 8, which only multiplies the step time). A step's
time is measured from its start to its end on a synchronised device; the first step (warm-up) is left out of
the median. Tokens per second counts prompt and completion tokens of chosen and rejected (trl's
`num_tokens`). Peak memory is the CUDA allocator's peak during training (weights included).

`--tiny` runs the same code on CPU with a 2-layer model, 2 steps and sequences of 256 tokens, so that the
script is tested with the project (tests/test_gpu_bench.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "Qwen2.5-Coder-7B-Instruct" / "dpo" / "config_salv.yaml"
# The architecture of Qwen/Qwen2.5-Coder-7B-Instruct (its config.json): 7.6B parameters.
QWEN25_CODER_7B = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "max_window_layers": 28,
}
TINY = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 2048}  # fmt: skip
ARMS = ("SignalAwareDPOTrainer", "DPOTrainer")


def recipe_arguments(arm: str, overrides: list[str]):
    """The recipe's YAML through the recipe's parser, with `overrides`; for `DPOTrainer`, the options only
    `SignalAwareDPOConfig` knows are left over (and checked to be those)."""
    from trl import DPOConfig, ModelConfig, TrlParser

    from salv_trl.recipes import RecipeArguments
    from salv_trl.trainer import SignalAwareDPOConfig

    config = SignalAwareDPOConfig if arm == "SignalAwareDPOTrainer" else DPOConfig
    parser = TrlParser((RecipeArguments, config, ModelConfig))
    *parsed, left = parser.parse_args_and_config(
        ["--config", str(RECIPE), *overrides], return_remaining_strings=True
    )
    if left[::2] != ([] if config is SignalAwareDPOConfig else ["--signal_mask", "--unmappable_rows"]):
        raise ValueError(f"unexpected options left over: {left}")
    return parsed


def synthetic_pairs(rows: int, max_length: int):
    """`rows` pairs whose chosen and rejected are longer than `max_length` tokens, and their tokenizer."""
    from salv_trl.tiny import tiny_preference_rows, train_tokenizer

    pairs = tiny_preference_rows(rows, seed=0)
    tokenizer = train_tokenizer([p["prompt"] + p["chosen"] + p["rejected"] for p in pairs], vocab_size=512)
    for pair in pairs:
        for side in ("chosen", "rejected"):
            text, spans = pair[side], pair[f"{side}_spans"]
            times = max_length // len(tokenizer(text)["input_ids"]) + 2
            pair[side] = text * times
            pair[f"{side}_spans"] = [
                [s + i * len(text), e + i * len(text)] for i in range(times) for s, e in spans
            ]
    return pairs, tokenizer


def build_model(architecture: dict, tokenizer, device: str, attn_implementation: str | None):
    """A randomly initialised Qwen2 of `architecture`, made in bf16 on `device` directly."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(
        **architecture, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation=attn_implementation
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def train_arm(arm: str, pairs, tokenizer, architecture: dict, overrides: list[str], device: str):
    """Train one arm; its figures, and for the last arm the trained model with its LoRA merged."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOTrainer, get_peft_config

    from salv_trl.trainer import SignalAwareDPOTrainer

    _, args, model_args = recipe_arguments(arm, overrides)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    model = build_model(architecture, tokenizer, device, model_args.attn_implementation)
    parameters = model.num_parameters()

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_step_begin(self, *_, **__):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            sync()
            self.seconds.append(time.perf_counter() - self.start)

    steps = StepTimes()
    start = time.perf_counter()
    trainer = {"SignalAwareDPOTrainer": SignalAwareDPOTrainer, "DPOTrainer": DPOTrainer}[arm](
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[steps],
    )
    setup = time.perf_counter() - start
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    history = trainer.state.log_history
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h]
    per_step = [b - a for a, b in zip([0, *tokens[:-1]], tokens, strict=True)]
    timed = steps.seconds[1:] or steps.seconds
    result = {
        "arm": arm,
        "parameters": parameters,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "setup_s": setup,
        "steps": len(steps.seconds),
        "first_step_s": steps.seconds[0],
        "median_step_s": statistics.median(timed),
        "tokens_per_step": statistics.median(per_step),
        "tokens_per_s": sum(per_step[1:] or per_step) / sum(timed),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "final_loss": next(h["loss"] for h in reversed(history) if "loss" in h),
        "signal_token_share": next(
            (h["signal/chosen_token_share"] for h in reversed(history) if "signal/chosen_token_share" in h),
            None,
        ),
        "max_length": args.max_length,
        "lora": {
            "r": model_args.lora_r,
            "alpha": model_args.lora_alpha,
            "targets": model_args.lora_target_modules,
        },
    }
    merged = trainer.model.merge_and_unload() if arm == ARMS[-1] else None
    del trainer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result, merged


def generate_throughput(
    model, tokenizer, pairs, batch: int, prompt_tokens: int, new_tokens: int, device: str
):
    """Greedy `generate` of exactly `new_tokens` tokens for `batch` prompts of `prompt_tokens` tokens."""
    import torch

    ids = [tokenizer(p["prompt"] + p["chosen"])["input_ids"][:prompt_tokens] for p in pairs[:batch]]
    inputs = torch.tensor(ids, device=device)
    model.eval()
    options = {"do_sample": False, "use_cache": True, "pad_token_id": tokenizer.pad_token_id}
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    with torch.no_grad():
        model.generate(inputs, max_new_tokens=4, min_new_tokens=4, **options)  # warm-up
        sync()
        start = time.perf_counter()
        output = model.generate(inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **options)
        sync()
        seconds = time.perf_counter() - start
    generated = (output.shape[1] - prompt_tokens) * batch
    return {"batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "seconds": seconds,
            "tokens_per_s": generated / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny model, 2 steps (a smoke run)")
    parser.add_argument("--steps", type=int, help="training steps per trainer (default: 20, --tiny: 2)")
    parser.add_argument("--output", help="write the figures to this JSON file")
    opts = parser.parse_args()
    import torch

    device = "cpu" if opts.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no GPU: run with --tiny for the CPU smoke run")
    steps = opts.steps or (2 if opts.tiny else 20)
    max_length = 256 if opts.tiny else 2048
    workdir = tempfile.mkdtemp(prefix="bench_7b")
    overrides = ["--output_dir", workdir, "--max_steps", str(steps), "--gradient_accumulation_steps", "1",
                 "--max_length", str(max_length), "--logging_steps", "1", "--save_strategy", "no",
                 "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    if opts.tiny:
        overrides += ["--use_cpu", "true"]
    pairs, tokenizer = synthetic_pairs(max(steps, 8), max_length)  # 8: the generate batch
    architecture = {**TINY, "vocab_size": len(tokenizer)} if opts.tiny else QWEN25_CODER_7B
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}")
    results, merged = [], None
    for arm in ARMS:
        result, merged = train_arm(arm, pairs, tokenizer, architecture, overrides, device)
        results.append(result)
    generation = generate_throughput(
        merged, tokenizer, pairs, batch=2 if opts.tiny else 8, prompt_tokens=64 if opts.tiny else 512,
        new_tokens=8 if opts.tiny else 128, device=device,
    )  # fmt: skip
    first = results[0]
    print(
        f"{first['parameters']:,} parameters in bf16, LoRA r {first['lora']['r']} alpha"
        f" {first['lora']['alpha']} on {first['lora']['targets']} ({first['trainable_parameters']:,}"
        f" trainable), {steps} steps of 1 pair at {max_length} tokens per sequence"
    )
    print(
        f"{'':<24}{'median step s':>14}{'first step s':>14}{'tokens/s':>10}{'peak GiB':>10}{'set-up s':>10}"
    )
    for r in results:
        peak = "n/a" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        print(
            f"{r['arm']:<24}{r['median_step_s']:>14.3f}{r['first_step_s']:>14.3f}{r['tokens_per_s']:>10.0f}"
            f"{peak:>10}{r['setup_s']:>10.1f}"
        )
    signal, dpo = results
    print(f"step time, signal-aware / DPO: {signal['median_step_s'] / dpo['median_step_s']:.3f}x")
    print(
        f"generate (greedy, LoRA merged): {generation['batch']} x {generation['prompt_tokens']} prompt"
        f" tokens, {generation['new_tokens']} new tokens each: {generation['tokens_per_s']:.0f} tokens/s"
    )
    if opts.output:
        Path(opts.output).write_text(json.dumps({"train": results, "generate": generation}, indent=2) + "\n")


if __name__ == "__main__":
    main()
