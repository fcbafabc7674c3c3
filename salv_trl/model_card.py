"""The Hub model card of models trained with salv-trl, rendered from the top-level `model_card.md`
template."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE_NAME = "model_card.md"
# A source checkout has the template at the top level; an installed package under <prefix>/share/salv-trl.
TEMPLATE_LOCATIONS = (
    Path(__file__).resolve().parents[1] / TEMPLATE_NAME,
    Path(sys.prefix) / "share" / "salv-trl" / TEMPLATE_NAME,
)
PAPER_ARXIV_ID = "2510.19296"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def _template_path() -> Path:
    for path in TEMPLATE_LOCATIONS:
        if path.is_file():
            return path
    raise FileNotFoundError(f"model card template not found in any of {[str(p) for p in TEMPLATE_LOCATIONS]}")


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
            Name → value, shown as a table in the given order (see
            [`~salv_trl.trainer.signal_dpo_trainer.training_hyperparameters`]). A `signal_mask` of `"full"`
            marks the whole-completion ablation in the text.
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
            Another Jinja template; defaults to salv-trl's `model_card.md`.

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
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path or _template_path()),
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


def _metric_order(metric: str) -> tuple[int, str]:
    """pass@1 < pass@5 < pass@10 < other metrics alphabetically."""
    prefix, _, k = metric.partition("@")
    return (int(k), prefix) if k.isdigit() else (sys.maxsize, metric)
