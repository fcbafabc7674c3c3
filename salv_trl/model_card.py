"""The Hub model card of models trained with salv-trl, rendered from the package's `templates/model_card.md`
(a Jinja template; the repository's top-level `model_card.md` links to it)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

if TYPE_CHECKING:
    from transformers import Trainer

# Package data (setup.cfg), so an installed package reads the same file as a source checkout
TEMPLATE = files(__package__) / "templates" / "model_card.md"
PAPER_ARXIV_ID = "2510.19296"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def render_model_card(
    model_name: str,
    base_model: str | None = None,
    datasets: Sequence[str] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    results: Mapping[str, Mapping[str, float]] | None = None,
    method: str = "signal-aware DPO",
    evaluation_notes: str | None = None,
    tags: Sequence[str] | None = None,
    license: str | None = "apache-2.0",
    template_path: str | Path | None = None,
) -> ModelCard:
    """
    Render the model card of a model trained with salv-trl.

    Args:
        model_name (`str`):
            Name of the model (e.g. its Hub repository id).
        base_model (`str`, *optional*):
            Hub id of the model it was fine-tuned from; local paths are better left out (they mean nothing on
            the Hub).
        datasets (`Sequence[str]`, *optional*):
            Hub ids (or paths) of the training datasets.
        hyperparameters (`Mapping[str, Any]`, *optional*):
            Name → value, shown as a table in the given order (see [`training_hyperparameters`]). A
            `signal_mask` of `"full"` marks the whole-completion ablation in the text.
        results (`Mapping[str, Mapping[str, float]]`, *optional*):
            Benchmark name → metric name → value in %, e.g. `{"RTLLM v1.1": {"pass@1": 62.6, "pass@5":
            72.4}}`. Fills the evaluation table and the card's `model-index`.
        method (`str`, *optional*, defaults to `"signal-aware DPO"`):
            Training method named in the text (e.g. `"rejection-sampled SFT"` for the SFT stage).
        evaluation_notes (`str`, *optional*):
            Markdown shown in the evaluation section after the table, e.g. a comparison with baselines and the
            command that reproduces it.
        tags (`Sequence[str]`, *optional*):
            Extra metadata tags; `salv`, `verilog` and `trl` are always there.
        license (`str`, *optional*, defaults to `"apache-2.0"`):
            License of the weights; should match the base model's.
        template_path (`str` or `Path`, *optional*):
            Another Jinja template; defaults to salv-trl's `templates/model_card.md` (`TEMPLATE`).

    Returns:
        [`~huggingface_hub.ModelCard`]: ready for `.save(path)` or `.push_to_hub(repo_id)`; its metadata
        validates.

    Example:

    ```python
    >>> from salv_trl.model_card import render_model_card
    >>> card = render_model_card("me/coder-salv", base_model="Qwen/Qwen2.5-Coder-7B-Instruct",
    ...                          results={"RTLLM v1.1": {"pass@1": 62.6}})
    >>> card.data.eval_results[0].metric_value
    62.6

    ```
    """
    results = {name: dict(scores) for name, scores in (results or {}).items()}
    metrics = sorted({metric for scores in results.values() for metric in scores}, key=_metric_order)
    eval_results = [
        EvalResult(
            task_type="text-generation",
            task_name="Verilog code generation",
            dataset_type=benchmark,
            dataset_name=benchmark,
            metric_type=metric,
            metric_name=metric,
            metric_value=float(value),
        )
        for benchmark, scores in results.items()
        for metric, value in sorted(scores.items(), key=lambda item: _metric_order(item[0]))
    ]
    # Only Hub ids (`owner/name`, not a local folder) belong in the metadata and get a link
    hub_datasets = [d for d in datasets or [] if _HUB_ID.fullmatch(d) and not Path(d).exists()]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=hub_datasets or None,
        eval_results=eval_results or None,
        library_name="peft" if hyperparameters and "lora_r" in hyperparameters else "transformers",
        license=license,
        pipeline_tag="text-generation",
        tags=sorted({"salv", "verilog", "trl", *(tags or [])}),
    )
    template = Path(template_path) if template_path is not None else TEMPLATE
    card = ModelCard.from_template(
        card_data,
        template_str=template.read_text(encoding="utf-8"),
        model_name=model_name,
        base_model=base_model,
        datasets=list(datasets or []),
        hub_datasets=hub_datasets,
        hyperparameters=dict(hyperparameters or {}),
        results=results,
        metrics=metrics,
        method=method,
        evaluation_notes=evaluation_notes,
        signal_mask=(hyperparameters or {}).get("signal_mask"),
    )
    return card


def trainer_model_card(
    trainer: Trainer,
    model_name: str | None = None,
    dataset_name: str | None = None,
    tags: Sequence[str] | None = None,
) -> ModelCard:
    """
    Render the model card of a trainer's run: [`render_model_card`] with the base model, the dataset and the
    hyperparameters of the run.

    Args:
        trainer ([`~transformers.Trainer`]):
            The trainer, e.g. a [`~salv_trl.trainer.SignalAwareDPOTrainer`], after (or during) training.
        model_name (`str`, *optional*):
            Name of the trained model; defaults to `hub_model_id`, else the name of `output_dir`.
        dataset_name (`str`, *optional*):
            Name (Hub id or path) of the training dataset.
        tags (`Sequence[str]`, *optional*):
            Extra tags for the card's metadata.

    Returns:
        [`~huggingface_hub.ModelCard`]: as [`render_model_card`] returns it.
    """
    base_model = trainer.model.config.name_or_path
    return render_model_card(
        model_name=model_name
        or trainer.hub_model_id
        or os.path.basename(os.path.normpath(trainer.args.output_dir)),
        # a local folder means nothing on the Hub
        base_model=base_model if base_model and not os.path.isdir(base_model) else None,
        datasets=[dataset_name] if dataset_name else None,
        hyperparameters=training_hyperparameters(trainer.args, trainer.model),
        tags=tags,
    )


def training_hyperparameters(args, model=None) -> dict[str, Any]:
    """
    The hyperparameters that define a training run, for the model card.

    Args:
        args ([`~salv_trl.trainer.SignalAwareDPOConfig`] or any [`~transformers.TrainingArguments`]):
            The run's configuration; fields a trainer does not have (e.g. `beta` for SFT) are left out.
        model (*optional*):
            The trained model; when it is a PEFT model, its LoRA rank, alpha and target modules are included.

    Returns:
        `dict[str, Any]`: name → value, in reading order.
    """
    loss_type = getattr(args, "loss_type", None)
    hyperparameters = {
        "signal_mask": getattr(args, "signal_mask", None),
        "unmappable_rows": getattr(args, "unmappable_rows", None),
        "loss_type": ", ".join(loss_type) if isinstance(loss_type, list) else loss_type,
        "beta": getattr(args, "beta", None),
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warmup_steps": args.warmup_steps or None,  # a float below 1 is a share of the steps
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_processes": args.world_size,
        "max_steps": args.max_steps if args.max_steps > 0 else None,
        "num_train_epochs": args.num_train_epochs if args.max_steps <= 0 else None,
        "max_length": getattr(args, "max_length", None),
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "seed": args.seed,
    }
    peft_config = getattr(model, "peft_config", {}).get("default") if model is not None else None
    if peft_config is not None:
        targets = peft_config.target_modules
        hyperparameters.update(
            {
                "lora_r": peft_config.r,
                "lora_alpha": peft_config.lora_alpha,
                "lora_target_modules": targets if isinstance(targets, str) else ", ".join(sorted(targets)),
            }
        )
    return {key: value for key, value in hyperparameters.items() if value is not None}


def _metric_order(metric: str) -> tuple[int, str]:
    """pass@1 < pass@5 < pass@10 < other metrics alphabetically."""
    prefix, _, k = metric.partition("@")
    return (int(k), prefix) if k.isdigit() else (sys.maxsize, metric)
