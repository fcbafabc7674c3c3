"""
End-to-end reproduction on CPU: does signal-aware DPO beat module-level DPO on a tiny model?

Every stage goes through the project's public entry points, as a user would run them:

1. synthetic tasks ([`salv_trl.synthetic`]): SFT corpus, dev tasks, grid tasks, train tasks (for rollouts),
   test tasks (train and test splits disjoint);
2. a tokenizer trained on the corpus and a tiny Qwen2 from a config ([`salv_trl.tiny`]), nothing downloaded;
3. `accelerate launch recipes/sft.py` on the corpus, until the greedy pass rate on the dev tasks reaches the
   SFT config's `stop_at_pass_rate`;
4. `salv-trl sample` on the train tasks → `salv-trl verify --dataset` → `salv-trl pairs` four ways;
5. with a `dpo_grid` (full mode), the DPO settings: module-level DPO per grid point, scored on the grid tasks,
   once per run ([`choose_dpo_settings`]);
6. `accelerate launch recipes/dpo.py` from the SFT model, once per variant, on the same rollouts, one epoch
   with the same settings: `module` (module-level pairs, whole sequences), `nomask` (signal pairs, whole
   sequences: the paper's "without signal-aware extraction" ablation), `signal` (signal pairs, loss on the
   slice tokens only) and `core` (the same without the module interface in the spans);
7. `salv-trl sample` on the test tasks for the SFT model and each DPO model, scored with the
   `evaluation/verilog_pass_at_k` metric's `custom` config: pass@1 and per-signal pass rate per task;
8. 95% bootstrap CIs over tasks and paired differences between models ([`salv_trl.evaluation.statistics`]).

It writes `results.json`, `table.md`, `grid.json`, learning curves (`curves_seed<S>.png`) and the DPO models'
cards under the output folder, prints a line per stage and per SFT/DPO measurement, and prints the tables
([`salv_trl.reproduction.report`]).

```bash
python recipes/tiny/reproduce.py --config recipes/tiny/config_quick.yaml   # one seed
python recipes/tiny/reproduce.py --config recipes/tiny/config_full.yaml    # 3 seeds, 400/200 tasks, grid
```
Finished stages are skipped when the command is run again with the same output folder. The pair sets, the DPO
runs and the test-set sampling of the models run `jobs` (config) one-thread processes at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .report import LABELS, VARIANTS, learning_curves, table, trainer_state, write_model_cards

# The source checkout this package is (editable-)installed from, as `make setup` does: the pipeline launches
# its `recipes/*.py` and scores with its `evaluation/verilog_pass_at_k` metric, neither of which is installed.
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# `salv-trl pairs` switches of each variant's preference set.
PAIR_SWITCHES = {
    "module": ["--mode", "module"],
    "nomask": ["--no-masks"],
    "signal": [],
    "core": ["--no-interface"],
}
# A trainer's log line (`{'loss': ...}`) or the pass-rate callback's measurement: echoed while a stage runs.
PROGRESS = re.compile(r"^\{'(loss|eval_pass_rate|train_runtime)'")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str], log_file: Path, marker: Path | None = None, threads: int = 1) -> None:
    """Run one pipeline command, its output in `log_file`; fail loudly with the log's tail.

    A command that succeeded once leaves `marker`, and is then skipped: re-running the pipeline resumes it
    without paying the start-up of every finished stage again.
    """
    if marker is not None and marker.is_file():
        return
    log("$ " + " ".join(argv))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "SALV_TRL_ALLOW_CODE_EXECUTION": "1",
        "PYTHONPATH": str(ROOT),
    }
    # Stages that run side by side get one OpenMP thread each (oversubscribed threads slow a busy machine
    # down by an order of magnitude); a stage that runs alone (SFT) may use `threads`. OMP_NUM_THREADS
    # overrides both.
    env.setdefault("OMP_NUM_THREADS", str(threads))
    with (
        log_file.open("a") as handle,
        subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as done,
    ):
        for line in done.stdout:
            handle.write(line)
            if PROGRESS.match(line):
                log(f"  {log_file.stem}: {line.strip()}")
    if done.returncode:
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(argv)}\n" + "\n".join(tail))
    if marker is not None:
        marker.touch()


def launch(recipe: str, config: str, overrides: dict, log_file: Path, threads: int = 1) -> None:
    argv = [
        str(BIN / "accelerate"),
        "launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(ROOT / "recipes" / recipe),
        "--config",
        str(ROOT / config),
    ]
    for key, value in overrides.items():  # a list (loss_type, loss_weights) is one option with several values
        argv += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    run(argv, log_file, threads=threads)


def salv(verb: str, folder: Path, *args: str, log_file: Path) -> None:
    """`salv-trl VERB ...` on a dataset folder, once (a `.salv-<verb>-done` marker in the folder)."""
    run([str(BIN / "salv-trl"), verb, *args, "--no-progress"], log_file, folder / f".salv-{verb}-done")


def write_jsonl(path: Path, rows) -> None:
    with path.open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


# ---- stages ----


def make_data(cfg: dict, seed: int, work: Path):
    """Synthetic SFT corpus, dev tasks, grid tasks, train tasks and test tasks of this seed (train and test
    disjoint by construction). The dev and grid tasks continue the corpus' stream, so SFT never sees them: SFT
    measures its pass rate on the dev tasks and stops once it reaches the config's target, and the DPO
    settings are chosen on the grid tasks (train split: the test tasks play no part in any choice)."""
    from ..synthetic import generate_tasks

    shape, sizes = cfg["tasks"].get("shape", {}), cfg["tasks"]
    held_out = sizes["sft"] + sizes["dev"]  # the corpus, then the dev tasks, then the grid tasks
    drawn = generate_tasks(held_out + sizes.get("grid", 0), split="train", seed=1000 + seed, **shape)
    corpus, dev, grid = drawn[: sizes["sft"]], drawn[sizes["sft"] : held_out], drawn[held_out:]
    # `train_on_corpus` (smoke tests only): rollouts on the corpus' first tasks, which a short SFT has learnt
    # well enough to give partly correct samples; a real run samples tasks the model has never seen.
    if sizes.get("train_on_corpus"):
        train = corpus[: sizes["train"]]
    else:
        train = generate_tasks(sizes["train"], split="train", seed=2000 + seed, **shape)
    test = generate_tasks(sizes["test"], split="test", seed=seed, **shape)
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "sft.jsonl", ({"prompt": t.prompt, "completion": t.completion} for t in corpus))
    write_jsonl(data / "dev_tasks.jsonl", (t.row() for t in dev))
    write_jsonl(data / "train_tasks.jsonl", (t.row() for t in train))
    # The test tasks sit alone in a folder: the metric's `custom` config takes that folder as its `data_dir`.
    (data / "test").mkdir(exist_ok=True)
    write_jsonl(data / "test" / "tasks.jsonl", (t.row() for t in test))
    (data / "grid").mkdir(exist_ok=True)
    write_jsonl(data / "grid" / "tasks.jsonl", (t.row() for t in grid))
    return corpus, train, test, grid


def make_base_model(cfg: dict, seed: int, corpus, path: Path) -> None:
    """Tokenizer trained on the corpus + a randomly initialised tiny Qwen2, saved for the SFT recipe."""
    if (path / "config.json").is_file():
        return
    from ..tiny import tiny_qwen2, train_tokenizer

    model_cfg = dict(cfg["model"])
    texts = [t.prompt + t.completion for t in corpus]
    tokenizer = train_tokenizer(texts, vocab_size=model_cfg.pop("vocab_size"))
    # Prompts stay plain text in every stage (SFT rows, sampling, preference rows), so that the model is
    # trained and sampled on the same token sequences.
    tokenizer.chat_template = None
    model = tiny_qwen2(tokenizer, seed=seed, **model_cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    log(f"base model: {model.num_parameters() / 1e6:.2f}M parameters, vocabulary {len(tokenizer)}")


def sample(cfg: dict, model: Path, tasks: Path, folder: Path, n: int, seed: int, log_file: Path) -> None:
    s = cfg["sample"]
    settings = {"n": n, "temperature": s["temperature"], "top-p": s["top_p"], "seed": seed, "device": "cpu",
                "max-new-tokens": s["max_new_tokens"], "batch-size": s["batch_size"]}  # fmt: skip
    options = [part for key, value in settings.items() for part in (f"--{key}", str(value))]
    salv("sample", folder, str(tasks), "--model", str(model), "--output", str(folder), *options,
         log_file=log_file)  # fmt: skip


def verify(cfg: dict, folder: Path, log_file: Path) -> None:
    vectors = str(cfg["verify"]["vectors"])
    salv("verify", folder, "--dataset", str(folder), "--vectors", vectors, log_file=log_file)


def make_pairs(
    cfg: dict, rollouts: Path, folder: Path, variant: str, tokenizer: Path, seed: int, log_file: Path
) -> None:
    """Copy the verified rollouts into the variant's folder and build its pairs there."""
    from ..data.hub import config_file

    if config_file(folder, "pairs").is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(rollouts, folder, ignore=shutil.ignore_patterns(".work"))
    extra = []
    if cfg["pairs"].get("max_pairs_per_task"):
        extra = ["--max-pairs-per-task", str(cfg["pairs"]["max_pairs_per_task"])]
    switches = [*PAIR_SWITCHES[variant], *extra, "--seed", str(seed), "--tokenizer", str(tokenizer)]
    salv("pairs", folder, str(folder), *switches, log_file=log_file)


def score(cfg: dict, model: Path, test_tasks: Path, tasks, folder: Path, seed: int, log_file: Path) -> dict:
    """pass@1 (n samples per test task) and per-signal pass rate: the metric's `custom` config."""
    result_file = folder / "score.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    import evaluate

    from ..data.hub import load_config

    # Running this pipeline is the opt-in to simulating model-written Verilog (always inside the sandbox).
    os.environ.setdefault("SALV_TRL_ALLOW_CODE_EXECUTION", "1")
    n = cfg["eval"]["n"]
    sample(cfg, model, test_tasks, folder, n, seed, log_file)
    rollouts = load_config(folder, "rollouts").to_list()
    by_task: dict[str, list[str]] = {}
    for row in sorted(rollouts, key=lambda r: (r["task_id"], r["sample_index"])):
        by_task.setdefault(row["task_id"], []).append(row["completion"])
    ids = [t.task_id for t in tasks]
    metric_path = str(ROOT / "evaluation" / "verilog_pass_at_k")
    metric = evaluate.load(metric_path, "custom", data_dir=str(test_tasks.parent), keep_in_memory=True)
    report = metric.compute(predictions=[by_task[i] for i in ids], references=ids, k=[1])
    # Per task: pass@1 (the share of its n samples that pass) and the per-signal pass rate over (sample,
    # output), where an output of a sample without per-output verdicts (no code, compile error, ...) counts
    # as failed. The confidence intervals resample these per-task values.
    task_pass, task_signal_pass = [], []
    for task, problem in zip(tasks, report["per_problem"], strict=True):
        samples = problem["samples"]
        task_pass.append(sum(bool(s["passed"]) for s in samples) / len(samples))
        verdicts = [{signal["name"]: signal["correct"] for signal in s["signals"]} for s in samples]
        correct = sum(bool(verdict.get(name)) for verdict in verdicts for name in task.output_names)
        task_signal_pass.append(correct / (len(samples) * len(task.output_names)))
    result = {
        "pass@1": report["pass@1"],
        "signal_pass": statistics.fmean(task_signal_pass),
        "task_pass": task_pass,
        "task_signal_pass": task_signal_pass,
        "status_counts": report["status_counts"],
        "samples": n,
    }
    result_file.write_text(json.dumps(result, indent=2))
    return result


def pair_stats(folder: Path, tokenizer_path: Path, num_tasks: int) -> dict:
    """Pairs per task, signals per pair, and the masked-in share of completion tokens of one pair set."""
    from transformers import AutoTokenizer

    from ..data.hub import load_config
    from ..data.pairs import mask_share

    pairs = load_config(folder, "pairs").to_list()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    signal_pairs = [p for p in pairs if p["kind"] == "signal"]
    share = mask_share(pairs, tokenizer) if pairs else {}
    return {
        "pairs": len(pairs),
        "pairs_per_task": len(pairs) / num_tasks,
        "tasks_with_pairs": len({p["task_id"] for p in pairs}),
        "signals_per_pair": statistics.fmean(len(p["signals"]) for p in signal_pairs)
        if signal_pairs
        else 0.0,
        "kinds": {kind: sum(p["kind"] == kind for p in pairs) for kind in sorted({p["kind"] for p in pairs})},
        "mask_share": share,
    }


def rollout_stats(folder: Path) -> dict:
    """The verified rollouts by status, how many pass (the library's rule,
    [`~salv_trl.hdl.verify.ModuleVerdict.passed`]) and how many fail with some outputs right."""
    from ..data.hub import load_config
    from ..data.rollouts import verdict_from_row
    from ..hdl.verify import Status

    verdicts = [verdict_from_row(row) for row in load_config(folder, "rollouts").to_list()]
    statuses: dict[str, int] = {}
    for verdict in verdicts:
        statuses[verdict.status.value] = statuses.get(verdict.status.value, 0) + 1
    # The premise of signal pairs: failing modules often have some outputs right.
    partial = sum(
        v.status == Status.ok and 0 < sum(s.correct for s in v.signals.values()) < len(v.signals)
        for v in verdicts
    )
    return {"rollouts": len(verdicts), "fully_correct": sum(v.passed for v in verdicts),
            "failing_with_a_correct_output": partial, "statuses": statuses}  # fmt: skip


def sft_summary(sft: Path) -> dict:
    """Where SFT stopped, out of how many steps, and the dev pass rates it measured on the way."""
    state = trainer_state(sft)
    rates = [(h["step"], h["eval_pass_rate"]) for h in state["log_history"] if "eval_pass_rate" in h]
    return {"steps": state["global_step"], "max_steps": state["max_steps"],
            "dev_pass_rate": rates[-1][1] if rates else None, "dev_pass_rates": rates}  # fmt: skip


def train_dpo(
    cfg: dict, work: Path, seed: int, variant: str, target: Path, settings: dict, logs: Path
) -> None:
    """`accelerate launch recipes/dpo.py` from the SFT model on the variant's pairs, with `settings` over the
    variant's config (the same settings for every variant)."""
    from ..data.hub import config_file

    if (target / "config.json").is_file() or (target / "adapter_config.json").is_file():
        return
    overrides = {
        **cfg.get("dpo_overrides", {}),
        **settings,
        "model_name_or_path": work / "sft",
        "dataset_name": config_file(work / f"pairs-{variant}", "pairs"),
        "pass_rate_data_dir": work / "data" / "dev_tasks.jsonl",
        "output_dir": target,
        "seed": seed,
    }
    launch(
        cfg["recipes"]["dpo"], cfg["recipes"]["dpo_configs"][variant], overrides, logs / f"{target.name}.log"
    )


def best_grid_point(scored: list[dict]) -> int:
    """The index of the best grid point: the highest pass@1, then per-signal pass, then the first. Scores are
    compared rounded, so that two points with the same number of passing samples tie whatever order their
    per-task means were summed in (the full run of 2026-12-07 chose grid 0 over grid 1 by a 1e-16
    difference)."""
    return max(
        range(len(scored)),
        key=lambda i: (round(scored[i]["pass@1"], 9), round(scored[i]["signal_pass"], 9), -i),
    )


def choose_dpo_settings(
    cfg: dict, out: Path, work: Path, seed: int, sft: Path, grid_tasks: list, logs: Path
) -> dict:
    """The DPO settings every variant uses, chosen for the module-level baseline on the grid tasks.

    Each point of the config's `dpo_grid` (overrides of the DPO configs) trains module-level DPO from this
    seed's SFT model on its module pairs; each model, and SFT as the reference point, is scored on the grid
    tasks (train split, never the test tasks); the highest grid pass@1 wins (per-signal pass breaks ties,
    then the grid's order). The method gets no advantage from tuning: the choice is the baseline's. Done once
    per run, on its first seed, and saved in `grid.json` for every other seed; without `dpo_grid`, the
    config's `dpo_overrides` alone are used.
    """
    grid_file = out / "grid.json"
    if grid_file.is_file():
        return json.loads(grid_file.read_text())
    points = cfg.get("dpo_grid") or []
    if not points:
        return {"settings": {}, "points": []}
    tasks_file = work / "data" / "grid" / "tasks.jsonl"
    targets = [work / f"grid{i}-module" for i in range(len(points))]

    def train(i: int) -> None:
        train_dpo(cfg, work, seed, "module", targets[i], points[i], logs)

    with ThreadPoolExecutor(cfg.get("jobs", 1)) as pool:
        list(pool.map(train, range(len(points))))
    baseline = score(cfg, sft, tasks_file, grid_tasks, work / "grid-sft", seed, logs / "grid-sft.log")
    log(f"grid: SFT pass@1 {baseline['pass@1']:.3f}, signal pass {baseline['signal_pass']:.3f}")
    scored = []
    for i, (point, target) in enumerate(zip(points, targets, strict=True)):
        result = score(
            cfg, target, tasks_file, grid_tasks, work / f"grid{i}-eval", seed, logs / f"grid{i}.log"
        )
        scored.append({"settings": point, "pass@1": result["pass@1"], "signal_pass": result["signal_pass"]})
        log(f"grid {i} {point}: pass@1 {result['pass@1']:.3f}, signal pass {result['signal_pass']:.3f}")
    best = best_grid_point(scored)
    choice = {
        "settings": points[best],
        "chosen": best,
        "points": scored,
        "sft": {"pass@1": baseline["pass@1"], "signal_pass": baseline["signal_pass"]},
        "tasks": len(grid_tasks),
        "seed": seed,
    }
    grid_file.write_text(json.dumps(choice, indent=2))
    return choice


def run_seed(cfg: dict, seed: int, out: Path) -> dict:
    work = out / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.time()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.time() - clock, 1)
        clock = time.time()

    corpus, train, test, grid = make_data(cfg, seed, work)
    base, sft = work / "base", work / "sft"
    make_base_model(cfg, seed, corpus, base)
    lap("data+model")
    if not (sft / "config.json").is_file():
        launch(
            cfg["recipes"]["sft"],
            cfg["recipes"]["sft_config"],
            {
                **cfg.get("sft_overrides", {}),
                "model_name_or_path": base,
                "dataset_name": work / "data" / "sft.jsonl",
                "pass_rate_data_dir": work / "data" / "dev_tasks.jsonl",
                "output_dir": sft,
                "seed": seed,
            },
            logs / "sft.log",
            threads=cfg.get("sft_threads", 1),
        )
    lap("sft")
    sft_stats = sft_summary(sft)
    log(f"seed {seed}: SFT stopped at step {sft_stats['steps']} of {sft_stats['max_steps']}, "
        f"dev pass rate {sft_stats['dev_pass_rate']}")  # fmt: skip

    rollouts = work / "rollouts"
    sample(
        cfg, sft, work / "data" / "train_tasks.jsonl", rollouts, cfg["sample"]["n"], seed, logs / "sample.log"
    )
    lap("sample")
    verify(cfg, rollouts, logs / "verify.log")
    lap("verify")
    stats = {"rollouts": rollout_stats(rollouts)}
    # The pair sets, the DPO runs and the test-set sampling of the models are independent processes: `jobs` of
    # them at a time (one per core).
    jobs = cfg.get("jobs", 1)

    def pairs_of(variant: str) -> None:
        folder, log_file = work / f"pairs-{variant}", logs / f"pairs-{variant}.log"
        make_pairs(cfg, rollouts, folder, variant, sft, seed, log_file)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(pairs_of, VARIANTS))
    # Read here, not in the threads: importing transformers from two threads at once fails (its lazy module).
    for variant in VARIANTS:
        stats[variant] = pair_stats(work / f"pairs-{variant}", sft, len(train))
    lap("pairs")

    trained = [v for v in VARIANTS if stats[v]["pairs"]]
    for variant in VARIANTS:
        if variant not in trained:
            log(f"seed {seed}: no {variant} pairs (the SFT model's rollouts give no contrast), not trained")

    choice = choose_dpo_settings(cfg, out, work, seed, sft, grid, logs) if "module" in trained else {}
    lap("grid")
    settings = choice.get("settings", {})
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda v: train_dpo(cfg, work, seed, v, work / f"dpo-{v}", settings, logs), trained))
    lap("dpo")

    models = {name: sft if name == "sft" else work / f"dpo-{name}" for name in ("sft", *trained)}
    test_tasks = work / "data" / "test" / "tasks.jsonl"

    def sample_test(name: str) -> None:
        folder, log_file = work / f"eval-{name}", logs / f"eval-{name}.log"
        sample(cfg, models[name], test_tasks, folder, cfg["eval"]["n"], seed, log_file)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(sample_test, models))
    lap("eval-sample")
    scores = {}
    for name, model in models.items():
        folder, log_file = work / f"eval-{name}", logs / f"eval-{name}.log"
        scores[name] = score(cfg, model, test_tasks, test, folder, seed, log_file)
        log(
            f"seed {seed} {LABELS[name]}: pass@1 {scores[name]['pass@1']:.3f}, "
            f"signal pass {scores[name]['signal_pass']:.3f}"
        )
    lap("eval-score")
    finals = learning_curves(work, seed, out, sft_stats["dev_pass_rates"], trained)
    result = {"seed": seed, "sft": sft_stats, "scores": scores, "pair_stats": stats, "final_logs": finals,
              "dpo_settings": settings, "timings_s": timings}  # fmt: skip
    (work / "result.json").write_text(json.dumps(result, indent=2))
    return result


def load_config(path: Path) -> dict:
    """The YAML config at `path`; a `base:` key names a config (relative to this one) whose keys it
    overrides."""
    cfg = yaml.safe_load(path.read_text())
    base = cfg.pop("base", None)
    return {**load_config(path.parent / base), **cfg} if base else cfg


def main(argv: list[str] | None = None) -> int:
    """`recipes/tiny/reproduce.py`: every seed of the config through every stage, then the report."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "recipes" / "tiny" / "config_quick.yaml"))
    parser.add_argument("--output-dir", help="default: the config's output_dir")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the config's seeds")
    args = parser.parse_args(argv)
    cfg = load_config(Path(args.config))
    out = Path(args.output_dir or cfg["output_dir"])
    if not out.is_absolute():
        out = ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds or cfg["seeds"]
    resumed = any((out / f"seed{seed}").exists() for seed in seeds)
    start = time.time()
    results = [run_seed(cfg, seed, out) for seed in seeds]
    wall = time.time() - start
    command = f"python recipes/tiny/reproduce.py --config {os.path.relpath(args.config, ROOT)}"
    if args.seeds:
        command += " --seeds " + " ".join(map(str, args.seeds))
    # a resumed run skips the stages that had finished: its wall time is this invocation's only, and says so
    skipped = "; stages that had finished before were skipped" if resumed else ""
    full = load_config(ROOT / "recipes" / "tiny" / "config_full.yaml")
    text = (
        table(results, full_design_tasks=full["tasks"]["test"] * len(full["seeds"]))
        + f"\n\nWall time of this invocation: {wall / 60:.1f} min ({os.cpu_count()} CPU cores{skipped}). "
        + f"Regenerate with `{command}`.\n"
    )
    (out / "results.json").write_text(json.dumps({"results": results, "wall_time_s": wall}, indent=2))
    (out / "table.md").write_text(text)
    write_model_cards(results, out, text)
    print(text)
    return 0
