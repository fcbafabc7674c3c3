"""
The report of the tiny reproduction ([`salv_trl.reproduction.pipeline`]): the Markdown tables (pass@1 and
per-signal pass rate with bootstrap CIs, paired differences, the power line, per-seed tables), the learning
curves and the DPO models' cards re-written with their test scores.

It reads what the pipeline wrote (per-seed result dicts, `trainer_state.json` and the recipes'
`training_hyperparameters.json` beside each model) and runs nothing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..evaluation.statistics import bootstrap_mean, minimum_detectable_difference, paired_difference

VARIANTS = ("module", "nomask", "signal", "core")
MODELS = ("sft", *VARIANTS)
LABELS = {
    "sft": "SFT",
    "module": "module-level DPO",
    "nomask": "signal pairs, no mask",
    "signal": "signal-aware DPO",
    "core": "signal-aware DPO, core spans",
}
# The paired differences the experiment is about: (a, b) reads "a minus b".
DIFFERENCES = (
    ("signal", "module"),
    ("signal", "nomask"),
    ("core", "signal"),
    *((v, "sft") for v in VARIANTS),
)


def trainer_state(model_dir: Path) -> dict:
    """The trainer state a recipe saved beside its model (`trainer_state.json`): steps and log history."""
    return json.loads((model_dir / "trainer_state.json").read_text())


def learning_curves(
    work: Path, seed: int, out: Path, sft_rates: list[tuple[int, float]], trained: list[str]
) -> dict:
    """Plot SFT's dev pass rate and, per DPO variant, its loss, reward margin and dev pass rate; return the
    DPO runs' final logged values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 3.6))
    if sft_rates:
        axes[0].plot(*zip(*sft_rates, strict=True), marker=".")
    axes[0].set_title("SFT: greedy pass rate on the dev tasks")
    axes[0].set_xlabel("step")
    finals = {}
    panels = (("loss", "DPO: loss"), ("rewards/margins", "DPO: reward margin"),
              ("eval_pass_rate", "DPO: greedy pass rate on the dev tasks"))  # fmt: skip
    for variant in trained:
        history = trainer_state(work / f"dpo-{variant}")["log_history"]
        for ax, (key, title) in zip(axes[1:], panels, strict=True):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points, strict=True), label=LABELS[variant], marker=".")
            ax.set_title(title)
            ax.set_xlabel("step")
        logged = [h for h in history if "loss" in h]
        finals[variant] = (
            {k: v for k, v in logged[-1].items() if isinstance(v, int | float)} if logged else {}
        )
    axes[1].legend()
    fig.suptitle(f"Tiny model, seed {seed}")
    fig.tight_layout()
    fig.savefig(out / f"curves_seed{seed}.png", dpi=120)
    plt.close(fig)
    return finals


def _strata(results: list[dict], name: str, key: str) -> list[list[float]] | None:
    """Per-task values of one model, one list per seed (None when the model was not trained in every seed)."""
    if not all(name in r["scores"] for r in results):
        return None
    return [r["scores"][name][key] for r in results]


def table(results: list[dict], full_design_tasks: int | None = None) -> str:
    """Markdown tables: pass@1 and per-signal pass rate per model with 95% bootstrap CIs over tasks (resampled
    within each seed), pair statistics, and the paired differences between models, pooled and per seed."""
    seeds = ", ".join(str(r["seed"]) for r in results)
    tasks = sum(len(r["scores"]["sft"]["task_pass"]) for r in results)
    lines = _head(
        f"Test tasks: {tasks} ({len(results)} seed(s): {seeds}), {results[0]['scores']['sft']['samples']}"
        " samples per task; % with 95% bootstrap CIs over tasks:",
        ["model", "pass@1", "per-signal pass", "pairs / task", "signals / pair", "masked-in share"],
    )[1:]
    for name in MODELS:
        cells = []
        for key in ("task_pass", "task_signal_pass"):
            strata = _strata(results, name, key)
            cells.append(bootstrap_mean(strata).format() if strata else "not trained in every seed")
        if name == "sft":
            cells += ["", "", ""]
        else:
            stats = [r["pair_stats"][name] for r in results]
            cells.append(f"{statistics.fmean(s['pairs_per_task'] for s in stats):.1f}")
            cells.append(
                f"{statistics.fmean(s['signals_per_pair'] for s in stats):.2f}" if name != "module" else ""
            )
            cells.append(f"{100 * statistics.fmean(_masked_share(s, name) for s in stats):.0f}%")
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    lines += _head(
        "Paired differences (a minus b, percentage points, mean per-task difference with a paired bootstrap"
        " 95% CI over tasks; * marks a CI that excludes 0):",
        [
            "a minus b",
            "pass@1, pooled",
            "per-signal pass, pooled",
            *(f"pass@1, seed {r['seed']}" for r in results),
        ],
    )
    for a, b in DIFFERENCES:
        cells = []
        for key in ("task_pass", "task_signal_pass"):
            x, y = _strata(results, a, key), _strata(results, b, key)
            cells.append(_difference(x, y) if x and y else "n/a")
        for r in results:
            both = a in r["scores"] and b in r["scores"]
            x, y = ([[r["scores"][m]["task_pass"]] for m in (a, b)]) if both else (None, None)
            cells.append(_difference(x, y) if both else "n/a")
        lines.append(f"| {LABELS[a]} − {LABELS[b]} | " + " | ".join(cells) + " |")
    signal, module = _strata(results, "signal", "task_pass"), _strata(results, "module", "task_pass")
    if signal and module and tasks > 1:
        differences = [
            x - y for xs, ys in zip(signal, module, strict=True) for x, y in zip(xs, ys, strict=True)
        ]
        line = (
            "Power: from these per-task differences (signal-aware minus module-level pass@1), the smallest"
            " true difference this design detects with 80% power at a two-sided 5% level is"
            f" {100 * minimum_detectable_difference(differences, tasks):.1f} points ({tasks} tasks)"
        )
        if full_design_tasks:
            mde = minimum_detectable_difference(differences, full_design_tasks)
            line += f"; with the full mode's {full_design_tasks} tasks, {100 * mde:.1f} points"
        lines += ["", line + "."]
    lines += _head(
        "Per seed: where SFT stopped (greedy pass rate on the dev tasks), pass@1 of each model (%):",
        ["seed", "SFT steps", "dev pass rate", *(LABELS[name] for name in MODELS)],
    )
    for r in results:
        sft, scores = r["sft"], r["scores"]
        dev = "" if sft["dev_pass_rate"] is None else f"{100 * sft['dev_pass_rate']:.0f}"
        cells = [
            f"{100 * scores[name]['pass@1']:.1f}" if name in scores else "not trained" for name in MODELS
        ]
        lines.append(
            f"| {r['seed']} | {sft['steps']} / {sft['max_steps']} | {dev} | " + " | ".join(cells) + " |"
        )
    lines += _head(
        "Per seed, the rollouts behind the pairs: failing rollouts that still have a correct output (the"
        " premise), pairs per train task and the masked-in share of completion tokens of each variant:",
        [
            "seed",
            "rollouts",
            "fully correct",
            "failing, with a correct output",
            *(f"{LABELS[v]}: pairs / task, masked-in" for v in VARIANTS),
        ],
    )
    for r in results:
        rollouts = r["pair_stats"]["rollouts"]
        failing = rollouts["rollouts"] - rollouts["fully_correct"]
        cells = [str(rollouts["rollouts"]), str(rollouts["fully_correct"]),
                 f"{rollouts['failing_with_a_correct_output']} / {failing}"]  # fmt: skip
        for variant in VARIANTS:
            stats = r["pair_stats"][variant]
            cells.append(f"{stats['pairs_per_task']:.1f}, {100 * _masked_share(stats, variant):.0f}%")
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    lines += _head(
        "Per seed and model: test samples by verdict status, and each DPO run's last logged reward accuracy"
        " and margin (trl's averages over the last logging window):",
        ["seed", "model", "ok", "syntax error", "interface mismatch", "other", "reward accuracy", "margin"],
    )
    for r in results:
        for name, score in r["scores"].items():
            counts = dict(score["status_counts"])
            cells = [str(counts.pop(k, 0)) for k in ("ok", "syntax_error", "interface_mismatch")]
            final = r["final_logs"].get(name, {})
            cells += [str(sum(counts.values()))]
            cells += [
                f"{final[k]:.2f}" if k in final else "" for k in ("rewards/accuracies", "rewards/margins")
            ]
            lines.append(f"| {r['seed']} | {LABELS[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _head(caption: str, columns: list[str]) -> list[str]:
    """The lines that open a Markdown table: a blank line, its caption, a blank line, header and rule."""
    return ["", caption, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def _masked_share(stats: dict, variant: str) -> float:
    """Mean of the chosen and rejected shares of completion tokens inside the variant's loss mask."""
    share = stats["mask_share"]
    if variant not in ("signal", "core") or not share:
        return 1.0
    return (share["chosen"] + share["rejected"]) / 2


def _difference(a: list[list[float]], b: list[list[float]]) -> str:
    interval = paired_difference(a, b)
    return interval.format() + (" *" if interval.excludes_zero else "")


def write_model_cards(results: list[dict], out: Path, summary: str) -> None:
    """Re-write the model card of each seed's DPO models with their test scores (`model-index`) and the
    comparison table of the whole run."""
    from ..data.hub import config_file
    from ..model_card import render_model_card
    from ..recipes import HYPERPARAMETERS_FILE

    for result in results:
        work = out / f"seed{result['seed']}"
        for variant in VARIANTS:
            model, scores = work / f"dpo-{variant}", result["scores"].get(variant)
            if scores is None:
                continue
            # recipes/dpo.py wrote the run's hyperparameters next to the weights, as JSON (models trained
            # before it did have none: their card goes without the table rather than the run failing)
            written = model / HYPERPARAMETERS_FILE
            hyperparameters = json.loads(written.read_text()) if written.is_file() else None
            card = render_model_card(
                model_name=f"tiny-{variant}-seed{result['seed']}",
                datasets=[str(config_file(work / f"pairs-{variant}", "pairs").relative_to(out))],
                hyperparameters=hyperparameters,
                results={
                    "salv-trl synthetic test tasks": {
                        "pass@1": 100 * scores["pass@1"],
                        "per-signal pass": 100 * scores["signal_pass"],
                    }
                },
                evaluation_notes=summary,
                tags=["salv-trl-tiny-reproduction"],
            )
            card.save(model / "README.md")
