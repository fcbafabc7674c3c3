"""
SignalAwareDPOTrainer vs trl's DPOTrainer on identical rows with a tiny Qwen2: step time, peak memory, and
dataset preparation time, as ratios measured in the same run. Targets: step time and peak memory <= 1.05,
preparation <= 2.

```bash
python benchmarks/bench_trainer.py          # CPU, or the GPU when there is one
python benchmarks/bench_trainer.py --hidden 512 --layers 8 --max-length 1024 --batch 8
```

Each arm trains in a fresh process (so that peak memory is its own), arms alternate, and each figure is the
best of `--repeats` runs; preparation times alternate in one process, best of `--prep-repeats`. Peak memory is
the CUDA allocator's peak on a GPU, the growth of the peak RSS during training on CPU.
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


def setup(arm: str, opts: argparse.Namespace, max_steps: int = 1):
    """The rows, the tokenizer and a trainer of one arm, on identical rows and models."""
    import datasets
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from salv_trl.tiny import tiny_preference_rows, tiny_qwen2, train_tokenizer
    from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer

    datasets.disable_caching()  # every preparation is done from scratch
    datasets.disable_progress_bars()
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
    trainer_cls, config_cls = {
        "dpo": (DPOTrainer, DPOConfig),
        "signal": (SignalAwareDPOTrainer, SignalAwareDPOConfig),
    }[arm]
    args = config_cls(
        output_dir=os.path.join(opts.workdir, arm),
        per_device_train_batch_size=opts.batch,
        max_steps=max_steps,
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
    size = {"hidden_size": opts.hidden, "num_hidden_layers": opts.layers, "max_position_embeddings": 4096}
    trainer = trainer_cls(
        model=tiny_qwen2(tokenizer, **size),
        ref_model=tiny_qwen2(tokenizer, **size),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    return rows, tokenizer, trainer


def measure_prep(opts: argparse.Namespace) -> dict:
    """Dataset preparation and collation times of both arms in this process, alternating (so that both see the
    same machine load): best of `--prep-repeats` preparations, median of 200 collations."""
    from datasets import Dataset

    arms = {arm: setup(arm, opts) for arm in ARMS}
    prep = dict.fromkeys(ARMS, float("inf"))
    for _ in range(opts.prep_repeats):
        for arm, (rows, tokenizer, trainer) in arms.items():
            dataset = Dataset.from_list(rows)
            start = time.perf_counter()
            trainer._prepare_dataset(dataset, tokenizer, trainer.args, "bench")
            prep[arm] = min(prep[arm], time.perf_counter() - start)
    examples = {
        arm: [trainer.train_dataset[i] for i in range(opts.batch)] for arm, (_, _, trainer) in arms.items()
    }
    collate: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(200):
        for arm, (_, _, trainer) in arms.items():
            start = time.perf_counter()
            trainer.data_collator(examples[arm])
            collate[arm].append(time.perf_counter() - start)
    return {arm: {"prep_s": prep[arm], "collate_s": statistics.median(collate[arm])} for arm in ARMS}


def measure(arm: str, opts: argparse.Namespace) -> dict:
    """Run one arm in this process: median step time and peak memory."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()
    _, _, trainer = setup(arm, opts, max_steps=opts.warmup + opts.steps)

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
    parser.add_argument("--prep-repeats", type=int, default=5)
    parser.add_argument("--arm", choices=(*ARMS, "prep"), help=argparse.SUPPRESS)  # internal: one measurement
    opts = parser.parse_args()
    if opts.arm:
        print("RESULT " + json.dumps(measure_prep(opts) if opts.arm == "prep" else measure(opts.arm, opts)))
        return 0

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    def child(arm: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--arm", arm], capture_output=True, text=True, env=env
        )
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not line:
            raise RuntimeError(f"the {arm} measurement failed:\n{out.stderr[-4000:]}")
        return json.loads(line[0][len("RESULT ") :])

    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for _ in range(opts.repeats):
        for arm in ARMS:
            results[arm].append(child(arm))
    best = {
        arm: {key: min(r[key] for r in runs) for key in ("step_s", "peak_bytes")}
        for arm, runs in results.items()
    }
    for arm, seconds in child("prep").items():
        best[arm].update(seconds)
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
        ("collator (ms/batch)", "collate_s", 1e3, None),
    ]
    for label, key, scale, target in rows:
        dpo, signal = best["dpo"][key], best["signal"][key]
        ratio = signal / dpo if dpo else float("nan")
        flag = "" if target is None else " ok" if ratio <= target else " OVER"
        bound = "" if target is None else f"<= {target}"
        print(f"{label:24}{dpo * scale:14.2f}{signal * scale:14.2f}{ratio:9.3f}{bound:>9}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
