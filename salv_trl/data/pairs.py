"""Signal-aware preference pairs from verified rollouts.

For each task, every ordered pair (A, B) of simulated rollouts where some outputs are correct in A and wrong
in B gives a row: `chosen`=A, `rejected`=B, `signals` = those contrast outputs, and `chosen_spans` /
`rejected_spans` = the union of the contrast outputs' slices in each completion, as `[start, end)` character
offsets into the completion. Rollouts that did not simulate (syntax or compile errors, timeouts, ...) give no
signal pairs. A completion without code may be rejected against a fully correct one, over the whole sequence
(the paper's extra pairs), and so may, on request, one that did not simulate.

Rows are plain text, or conversational when the rollouts were sampled with a chat template ([`PromptFormat`]):
`prompt` is then the messages the model was prompted with and `chosen` / `rejected` a single assistant message
whose content is the completion, so the spans index the message content and trl renders the sampled text.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from datasets import Features, List, Value

from ..hdl.verify import ModuleVerdict, SignalVerdict, Status
from .rollouts import verdict_from_row
from .sampling import PromptFormat

__all__ = [
    "CONVERSATIONAL_PAIR_FEATURES",
    "PAIR_FEATURES",
    "PairOptions",
    "build_pairs",
    "completion_text",
    "mask_share",
    "merge_spans",
    "pair_features",
]

PAIR_FEATURES = Features(
    {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "chosen_spans": List(List(Value("int64"))),
        "rejected_spans": List(List(Value("int64"))),
        "signals": List(Value("string")),
        "task_id": Value("string"),
        # "signal": contrast-signal pair; "no_code": no-code completion rejected against a fully correct one;
        # "not_simulated": a completion that did not simulate rejected against a fully correct one;
        # "module": module-level ablation pair (fully correct vs failing).
        "kind": Value("string"),
    }
)

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
#: [`PAIR_FEATURES`] of the rows built from rollouts sampled with a chat template.
CONVERSATIONAL_PAIR_FEATURES = Features(
    {**PAIR_FEATURES, "prompt": _MESSAGES, "chosen": _MESSAGES, "rejected": _MESSAGES}
)

_MODES = ("signal", "module")
_MISSING = ("drop", "whole")


@dataclass(frozen=True)
class PairOptions:
    """How pairs are built (recorded in the dataset card).

    Args:
        mode (`str`, defaults to `"signal"`): `"signal"`: contrast-signal pairs with slice spans (the method);
            `"module"`: ablation with module-level pairs only, a fully correct rollout chosen against any
            failing one (simulated with wrong outputs, or not simulated at all), spans over the whole
            completions.
        max_pairs_per_task (`int`, *optional*): Keep at most this many pairs per task, a seeded random choice.
        drop_duplicates (`bool`, defaults to `True`): Keep only the first of identical completions of a task.
        include_interface (`bool`, defaults to `True`): Spans include the module interface the slice needs
            (header, port and parameter declarations); otherwise only the slice's own statements
            (`core_spans`).
        missing_slice (`str`, defaults to `"drop"`): When a contrast signal has no slice in chosen or
            rejected: `"drop"` the pair, or fall back to the `"whole"` completion.
        masks (`bool`, defaults to `True`): `False` is the ablation "signal pairs without masks": same pairs,
            spans over the whole completions.
        no_code_pairs (`bool`, defaults to `True`): Add whole-sequence pairs rejecting completions without
            code against fully correct ones (the paper's extra pairs).
        not_simulated_pairs (`bool`, defaults to `False`): Add whole-sequence pairs rejecting completions that
            have code but did not simulate (syntax, interface, compile or runtime errors, timeouts, refusals)
            against fully correct ones. Off by default, as in the paper, where such samples give no pairs: a
            task with 7 correct samples and 3 that do not compile then has none.
        seed (`int`, defaults to `0`): Seed of the `max_pairs_per_task` choice.
        require_proof (`bool`, defaults to `False`): Only contrasts formal verification agrees with (rollouts
            verified with `method="formal"` or `"both"`): a contrast output proved (or bounded-proved) in the
            chosen rollout and a confirmed counterexample in the rejected one; in module mode, a chosen
            rollout whose outputs are all proven correct against a rejected one not simulated or with a
            confirmed counterexample.
    """

    mode: str = "signal"
    max_pairs_per_task: int | None = None
    drop_duplicates: bool = True
    include_interface: bool = True
    missing_slice: str = "drop"
    masks: bool = True
    no_code_pairs: bool = True
    not_simulated_pairs: bool = False
    seed: int = 0
    require_proof: bool = False

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.missing_slice not in _MISSING:
            raise ValueError(f"missing_slice must be one of {_MISSING}, got {self.missing_slice!r}")
        if self.max_pairs_per_task is not None and self.max_pairs_per_task < 1:
            raise ValueError("max_pairs_per_task must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_features(prompt_format: PromptFormat) -> Features:
    """The pair columns for rollouts sampled with `prompt_format`."""
    return CONVERSATIONAL_PAIR_FEATURES if prompt_format.chat_template else PAIR_FEATURES


def completion_text(completion: str | list[dict[str, str]]) -> str:
    """The text a pair's spans index: the completion, or the content of its single assistant message."""
    return completion if isinstance(completion, str) else completion[0]["content"]


def merge_spans(spans: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sorted union of `[start, end)` spans, overlapping or touching spans merged, empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in spans if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _whole(text: str) -> list[list[int]]:
    return [[0, len(text)]] if text else []


def _signal_spans(rollout: dict, signals: Sequence[str], options: PairOptions) -> list[list[int]] | None:
    """Union of the signals' slices in the completion; `None` when one is missing and pairs then drop."""
    if not options.masks:
        return _whole(rollout["completion"])
    slices = {s["signal"]: s for s in rollout.get("slices") or []}
    if any(signal not in slices for signal in signals):
        return None if options.missing_slice == "drop" else _whole(rollout["completion"])
    field = "spans" if options.include_interface else "core_spans"
    return merge_spans(span for signal in signals for span in slices[signal][field])


def _row(chosen: dict, rejected: dict, chosen_spans, rejected_spans, signals: list[str], kind: str) -> dict:
    return {
        "prompt": chosen["prompt"],
        "chosen": chosen["completion"],
        "rejected": rejected["completion"],
        "chosen_spans": chosen_spans,
        "rejected_spans": rejected_spans,
        "signals": signals,
        "task_id": chosen["task_id"],
        "kind": kind,
    }


def _task_pairs(rollouts: list[dict], options: PairOptions) -> list[dict]:
    pairs = []
    verdicts = [verdict_from_row(r) for r in rollouts]
    correct = [r for r, verdict in zip(rollouts, verdicts, strict=True) if _chosen_module(verdict, options)]
    if options.mode == "module":
        return [
            _row(a, b, _whole(a["completion"]), _whole(b["completion"]), [], "module")
            for a in correct
            for b, verdict in zip(rollouts, verdicts, strict=True)
            if _rejected_module(verdict, options)
        ]
    simulated = [
        (r, verdict) for r, verdict in zip(rollouts, verdicts, strict=True) if verdict.status == Status.ok
    ]
    for a, verdict_a in simulated:
        for b, verdict_b in simulated:
            signals = sorted(
                name
                for name, result in verdict_a.signals.items()
                if name in verdict_b.signals and _contrast(result, verdict_b.signals[name], options)
            )
            if not signals:
                continue
            chosen_spans = _signal_spans(a, signals, options)
            rejected_spans = _signal_spans(b, signals, options)
            if chosen_spans is not None and rejected_spans is not None:
                pairs.append(_row(a, b, chosen_spans, rejected_spans, signals, "signal"))
    # Whole-sequence pairs: a fully correct rollout against one that never simulated, where asked for.
    wanted = {"no_code": options.no_code_pairs, "not_simulated": options.not_simulated_pairs}
    failed = [
        (r, "no_code" if verdict.status == Status.no_code else "not_simulated")
        for r, verdict in zip(rollouts, verdicts, strict=True)
        if verdict.status != Status.ok
    ]
    pairs += [
        _row(a, b, _whole(a["completion"]), _whole(b["completion"]), [], kind)
        for a in correct
        for b, kind in failed
        if wanted[kind]
    ]
    return pairs


def _contrast(chosen: SignalVerdict, rejected: SignalVerdict, options: PairOptions) -> bool:
    """Output shown correct in the chosen rollout, shown wrong in the rejected one (untested never counts)."""
    proven = not options.require_proof or (chosen.proven and rejected.proven)
    return chosen.correct and rejected.wrong and proven


def _chosen_module(verdict: ModuleVerdict, options: PairOptions) -> bool:
    if options.require_proof:
        return verdict.passed and all(v.correct and v.proven for v in verdict.signals.values())
    return verdict.passed


def _rejected_module(verdict: ModuleVerdict, options: PairOptions) -> bool:
    if options.require_proof:
        return verdict.status != Status.ok or any(v.wrong and v.proven for v in verdict.signals.values())
    return not verdict.passed


def _render(pair: dict, prompt_format: PromptFormat) -> dict:
    return {
        **pair,
        "prompt": prompt_format.training_prompt(pair["prompt"]),
        "chosen": prompt_format.training_completion(pair["chosen"]),
        "rejected": prompt_format.training_completion(pair["rejected"]),
    }


def build_pairs(
    rollouts: Iterable[dict], options: PairOptions | None = None, prompt_format: PromptFormat | None = None
) -> list[dict]:
    """Preference rows (columns of [`pair_features`]) from verified rollout rows.

    Args:
        rollouts (`Iterable[dict]`): Rows of the verified `rollouts` config: `task_id`, `prompt`,
            `completion`, `sample_index`, `verdict` (`status`, `signals`: `name` / `correct` / ...), `slices`
            (`signal`, `spans`, `core_spans`, offsets into the completion). Unverified rows (`verdict` None)
            are skipped.
        options ([`PairOptions`], *optional*): Pair construction switches; the method's defaults otherwise.
        prompt_format ([`PromptFormat`], *optional*): How the rollouts' prompts were rendered when sampled
            (plain text by default); rows are conversational when it used a chat template.

    Returns:
        `list[dict]`: pairs grouped by task in first-seen task order, in rollout order within a task.
    """
    options = options or PairOptions()
    by_task: dict[str, list[dict]] = defaultdict(list)
    for rollout in rollouts:
        if rollout.get("verdict") is None:
            continue
        group = by_task[rollout["task_id"]]
        if options.drop_duplicates and any(r["completion"] == rollout["completion"] for r in group):
            continue
        group.append(rollout)
    pairs = []
    for task_id, group in by_task.items():
        group.sort(key=lambda r: r["sample_index"])
        task_pairs = _task_pairs(group, options)
        if options.max_pairs_per_task is not None and len(task_pairs) > options.max_pairs_per_task:
            keep = random.Random(f"{options.seed}:{task_id}").sample(
                range(len(task_pairs)), options.max_pairs_per_task
            )
            task_pairs = [task_pairs[i] for i in sorted(keep)]
        pairs += task_pairs
    prompt_format = prompt_format or PromptFormat()
    return [_render(pair, prompt_format) for pair in pairs]


def mask_share(pairs: Sequence[dict], tokenizer=None) -> dict[str, Any]:
    """Mean share of each completion covered by its spans: the part the signal-aware loss is computed on.

    Args:
        pairs (`Sequence[dict]`): Pair rows, plain or conversational ([`completion_text`]).
        tokenizer (*optional*): A fast tokenizer (with offset mappings): the share is then counted in
        completion tokens (a token is in when it overlaps a span); without one, in characters.

    Returns:
        `dict` with `unit` (`"tokens (<tokenizer name>)"` or `"characters"`), `chosen` and `rejected` mean
        shares.
    """

    def share(text: str, spans: list[list[int]]) -> float:
        if tokenizer is None:
            return sum(e - s for s, e in spans) / len(text) if text else 0.0
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        inside = sum(any(s < e2 and s2 < e for s2, e2 in spans) for s, e in offsets)
        return inside / len(offsets) if offsets else 0.0

    unit = (
        "characters"
        if tokenizer is None
        else f"tokens ({getattr(tokenizer, 'name_or_path', '') or 'tokenizer'})"
    )
    result: dict[str, Any] = {"unit": unit, "chosen": 0.0, "rejected": 0.0}
    for side in ("chosen", "rejected"):
        values = [share(completion_text(p[side]), p[f"{side}_spans"]) for p in pairs]
        result[side] = sum(values) / len(values) if values else 0.0
    return result
