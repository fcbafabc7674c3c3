"""
SignalAwareDPOTrainer vs trl's DPOTrainer on identical rows with a tiny Qwen2: step time, peak memory, and
dataset preparation time, as ratios measured in the same run. Targets: step time and peak memory <= 1.05,
preparation <= 2.

    python benchmarks/bench_trainer.py                      # CPU, or the GPU when there is one python
    benchmarks/bench_trainer.py --hidden 512 --layers 8 --max-length 1024 --batch 8

Each arm runs in a fresh process (so that peak memory is its own), arms alternate, and each figure is the best
of `--repeats` runs. Peak memory is the CUDA allocator's peak on a GPU, the growth of the peak RSS during
training on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ARMS = ("dpo", "signal")


def measure(arm: str, opts: argparse.Namespace) -> dict:
    """Run one arm in this process: dataset preparation time, median step time, peak memory."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from salv_trl.tiny import tiny_preference_rows, tiny_qwen2, train_tokenizer
    from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer

    rows = tiny_preference_rows(opts.rows, seed=0)
    for row in rows:  # longer completions, so that the sequences reach realistic lengths
        pad = "// " + " ".join(f"note{i}" for i in range(opts.filler)) + "\n"
        row["chosen"], row["rejected"] = pad + row["chosen"], pad + row["rejected"]
        row["chosen_spans"] = [[s + len(pad), e + len(pad)] for s, e in row["chosen_spans"]]
        row["rejected_spans"] = [[s + len(pad), e + len(pad)] for s, e in row["rejected_spans"]]
    tokenizer = train_tokenizer(
        [r["prompt"] + r["chosen"] + r["rejected"] for r in rows[:64]], vocab_size=512
    )
    cuda = torch.cuda.is_available()
    trainer_cls, config_cls = (
        (DPOTrainer, DPOConfig) if arm == "dpo" else (SignalAwareDPOTrainer, SignalAwareDPOConfig)
    )
    args = config_cls(
        output_dir=os.path.join(opts.workdir, arm),
        per_device_train_batch_size=opts.batch,
        max_steps=opts.warmup + opts.steps,
        max_length=opts.max_length,
        learning_rate=1e-4,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda,
        dataloader_num_workers=0,
    )
    model = tiny_qwen2(
        tokenizer, hidden_size=opts.hidden, num_hidden_layers=opts.layers, max_position_embeddings=4096
    )
    ref = tiny_qwen2(
        tokenizer, hidden_size=opts.hidden, num_hidden_layers=opts.layers, max_position_embeddings=4096
    )
    trainer = trainer_cls(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )

    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    prep = []
    for _ in range(3):
        start = time.perf_counter()
        trainer._prepare_dataset(Dataset.from_list(rows), tokenizer, args, "bench")
        prep.append(time.perf_counter() - start)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], None

        def on_step_begin(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    trainer.add_callback(timer)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trainer.train()
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    tokens = sum(
        len(r["prompt_ids"]) + len(r["chosen_ids"]) for r in trainer.train_dataset.select(range(opts.batch))
    )
    return {
        "prep_s": min(prep),
        "step_s": statistics.median(timer.times[opts.warmup :]),
        "peak_bytes": peak,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "tokens_per_row": tokens / opts.batch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--filler", type=int, default=60, help="extra words per completion")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/salv-bench-trainer")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    opts = parser.parse_args()
    if opts.arm:
        print("RESULT " + json.dumps(measure(opts.arm, opts)))
        return 0

    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for _ in range(opts.repeats):
        for arm in ARMS:
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--arm", arm],
                capture_output=True,
                text=True,
                env=env,
            )
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not line:
                sys.stderr.write(out.stderr[-4000:])
                return 1
            results[arm].append(json.loads(line[0][len("RESULT ") :]))

    best = {
        arm: {key: min(r[key] for r in runs) for key in ("prep_s", "step_s", "peak_bytes")}
        for arm, runs in results.items()
    }
    first = results["dpo"][0]
    print(
        f"device: {first['device']}  model: hidden {opts.hidden} x {opts.layers} layers  batch {opts.batch}  "
        f"~{first['tokens_per_row']:.0f} tokens per prompt+chosen  rows {opts.rows}  best of {opts.repeats}"
    )
    print(f"{'':24}{'DPOTrainer':>14}{'SignalAware':>14}{'ratio':>9}{'target':>9}")
    rows = [
        ("step time (ms)", "step_s", 1e3, 1.05),
        ("peak memory (MiB)", "peak_bytes", 1 / 2**20, 1.05),
        ("dataset prep (s)", "prep_s", 1, 2.0),
    ]
    for label, key, scale, target in rows:
        dpo, signal = best["dpo"][key], best["signal"][key]
        ratio = signal / dpo if dpo else float("nan")
        flag = "ok" if ratio <= target else "OVER"
        print(
            f"{label:24}{dpo * scale:14.2f}{signal * scale:14.2f}{ratio:9.3f}{'<= ' + str(target):>9} {flag}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
