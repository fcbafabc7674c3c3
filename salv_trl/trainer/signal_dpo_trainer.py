"""Signal-aware DPO: trl's [`~trl.DPOTrainer`] with the loss restricted to the tokens of signal spans."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from trl import DPOTrainer
from trl.data_utils import is_conversational
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import get_config_model_id, global_then_local_main_first

from ..model_card import trainer_model_card
from .signal_dpo_config import SignalAwareDPOConfig

logger = logging.getLogger(__name__)

CHOSEN_MASK = "chosen_signal_mask"
REJECTED_MASK = "rejected_signal_mask"
STATUS = "signal_status"
# Batch key with the number of completion tokens before narrowing, for the token-share metric. It is
# removed before any forward pass: extra batch keys would be handed to `model(**inputs)`.
COMPLETION_TOKENS = "completion_tokens"


@dataclass
class DataCollatorForSignalAwarePreference(DataCollatorForPreference):
    """
    Data collator for signal-aware preference data: [`~trl.trainer.dpo_trainer.DataCollatorForPreference`]
    whose `completion_mask` is narrowed to the signal tokens.

    Besides `"prompt_ids"`, `"chosen_ids"` and `"rejected_ids"`, each example holds `"chosen_signal_mask"` and
    `"rejected_signal_mask"`: one 0/1 flag per completion token (as written by [`SignalAwareDPOTrainer`]'s
    dataset preparation). The returned `"completion_mask"` is the parent's mask times these flags, truncated
    and padded the same way. [`~trl.DPOTrainer`] turns `completion_mask == 0` into label `-100` for the
    policy, the reference model (a separate one, PEFT's adapter-disabled base, or the precomputed reference
    log-probabilities alike), so narrowing it here restricts every log-probability of the loss at once.
    `"completion_tokens"` holds each sequence's completion length before narrowing; the trainer removes it
    before the forward pass.

    Examples:
    ```python
    >>> from salv_trl.trainer import DataCollatorForSignalAwarePreference

    >>> collator = DataCollatorForSignalAwarePreference(pad_token_id=0)
    >>> examples = [
    ...     {"prompt_ids": [1, 2], "chosen_ids": [4, 5, 6], "rejected_ids": [7, 8],
    ...      "chosen_signal_mask": [0, 1, 0], "rejected_signal_mask": [1, 1]},
    ... ]
    >>> collator(examples)["completion_mask"]
    tensor([[0, 0, 0, 1, 0],
            [0, 0, 1, 1, 0]])

    ```
    """

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        flags = [[0] * len(ex["prompt_ids"]) + list(ex[CHOSEN_MASK]) for ex in examples]
        flags += [[0] * len(ex["prompt_ids"]) + list(ex[REJECTED_MASK]) for ex in examples]
        if self.max_length is not None:  # the parent validated `truncation_mode`
            keep = (
                slice(None, self.max_length)
                if self.truncation_mode == "keep_start"
                else slice(-self.max_length, None)
            )
            flags = [f[keep] for f in flags]
        completion_mask = output["completion_mask"]
        signal = torch.zeros_like(completion_mask)
        for row, f in enumerate(flags):
            signal[row, : len(f)] = torch.tensor(f, dtype=signal.dtype)
        output[COMPLETION_TOKENS] = completion_mask.sum(dim=1)
        output["completion_mask"] = completion_mask * signal
        return output


@dataclass
class SignalSpanStats:
    """How many rows of a dataset had usable signal spans, as counted by [`SignalAwareDPOTrainer`] before
    training starts."""

    rows: int  # rows that reached the signal mask (after trl's own filter)
    empty: int  # chosen or rejected spans cover no completion token at all
    truncated: int  # they do, but none of those tokens survives truncation to `max_length`
    policy: str  # what happened to the `empty + truncated` rows: "drop" or "whole"
    prompt_fills_max_length: int = 0  # rows trl itself removed: their prompt alone fills `max_length`
    max_length: int | None = None

    @property
    def unmappable(self) -> int:
        return self.empty + self.truncated

    def describe(self) -> str:
        """One line: the rows, and those that truncation to `max_length` (or empty spans) took away."""
        parts = [f"{self.rows + self.prompt_fills_max_length} rows"]
        if self.prompt_fills_max_length:
            parts.append(
                f"{self.prompt_fills_max_length} removed by trl (the prompt alone fills max_length "
                f"{self.max_length})"
            )
        if self.unmappable:
            policy = "dropped" if self.policy == "drop" else "trained on whole completions"
            parts.append(
                f"{self.unmappable} without a signal token within max_length ({self.truncated} cut off, "
                f"{self.empty} with empty spans): {policy}"
            )
        return "; ".join(parts)


def token_signal_mask(offsets: list[tuple[int, int]], spans: list[list[int]], shift: int) -> list[int]:
    """
    Flag the tokens whose character range overlaps a span.

    Args:
        offsets (`list[tuple[int, int]]`):
            `[start, end)` character range of each completion token in the tokenized text.
        spans (`list[list[int]]`):
            `[start, end)` character spans, as offsets into the completion.
        shift (`int`):
            Position of the completion's first character in the tokenized text.

    Returns:
        `list[int]`: 1 for a token that shares at least one character with a span (a span edge inside a token
        counts the whole token), else 0.
    """
    return _overlap_flags(offsets, spans, shift).tolist()


def _overlap_flags(offsets: list[tuple[int, int]], spans: list[list[int]], shift: int) -> np.ndarray:
    """[`token_signal_mask`] as an int8 array, which Arrow stores without inspecting every element."""
    if not spans or not offsets:
        return np.zeros(len(offsets), dtype=np.int8)
    tokens = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2) + shift
    bounds = bounds[bounds[:, 0] < bounds[:, 1]]  # empty spans cover nothing
    overlap = (tokens[:, :1] < bounds[None, :, 1]) & (tokens[:, 1:] > bounds[None, :, 0])
    return overlap.any(axis=1).astype(np.int8)


def _check_spans(spans: Any, length: int, column: str) -> list[list[int]]:
    spans = [list(span) for span in spans or []]
    for span in spans:
        if len(span) != 2 or not 0 <= span[0] <= span[1] <= length:
            raise ValueError(
                f"`{column}` must hold [start, end) character offsets with 0 <= start <= end <= {length} "
                f"(the completion's length), got {span}."
            )
    return spans


def _texts_with_offsets(
    tokenizer: PreTrainedTokenizerBase, batch: dict[str, list], side: str
) -> tuple[list[str], list[int], list[int], bool]:
    """The prompt + completion texts trl tokenizes, the position of each completion (the text its spans index)
    in
    them, the completions' lengths, and whether the texts come from a chat template."""
    first = {key: values[0] for key, values in batch.items()}
    if not is_conversational(first):
        texts = [prompt + completion for prompt, completion in zip(batch["prompt"], batch[side], strict=True)]
        return texts, [len(prompt) for prompt in batch["prompt"]], [len(c) for c in batch[side]], False
    texts, shifts, lengths = [], [], []
    for index, (prompt, completion) in enumerate(zip(batch["prompt"], batch[side], strict=True)):
        if len(completion) != 1:
            raise ValueError(
                f"Conversational `{side}` completions must be a single assistant message for their spans to "
                f"index it, got {len(completion)} messages."
            )
        content = completion[0]["content"]
        tools = batch["tools"][index] if "tools" in batch else None
        kwargs = batch["chat_template_kwargs"][index] if "chat_template_kwargs" in batch else None
        text = tokenizer.apply_chat_template(
            prompt + completion, tokenize=False, tools=tools, **(kwargs or {})
        )
        # The completion is the last message, so its content is the last occurrence of its text
        start = text.rfind(content)
        if start < 0:
            raise ValueError(
                "The chat template changes the text of the completion (e.g. strips it), so the character "
                f"spans cannot be placed in the rendered conversation: {content[:80]!r}"
            )
        texts.append(text)
        shifts.append(start)
        lengths.append(len(content))
    return texts, shifts, lengths, True


def _add_signal_masks(
    batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, args: SignalAwareDPOConfig
) -> dict[str, list]:
    """Batched dataset `map` function: token flags of the signal spans for the chosen and rejected
    completions."""
    rows = len(batch["prompt_ids"])
    output: dict[str, list] = {CHOSEN_MASK: [], REJECTED_MASK: []}
    status = ["ok"] * rows
    for side, column, key in (
        ("chosen", args.chosen_spans_column, CHOSEN_MASK),
        ("rejected", args.rejected_spans_column, REJECTED_MASK),
    ):
        texts, shifts, lengths, chat = _texts_with_offsets(tokenizer, batch, side)
        # as trl: the tokenizer is called on plain text; `apply_chat_template` adds no special tokens
        encoding = tokenizer(text=texts, return_offsets_mapping=True, add_special_tokens=not chat)
        for row in range(rows):
            prompt_ids, completion_ids = batch["prompt_ids"][row], batch[f"{side}_ids"][row]
            n_prompt = len(prompt_ids)
            # trl moves tokens that merge across the prompt/completion boundary into the completion; only
            # the very same tokenization gives the right offsets
            if encoding["input_ids"][row] != list(prompt_ids) + list(completion_ids):
                raise ValueError(
                    f"Re-tokenizing the {side} completion with offsets did not reproduce trl's token ids; "
                    "the signal mask cannot be aligned with the tokens trained on."
                )
            spans = _check_spans(batch[column][row], lengths[row], column)
            flags = _overlap_flags(encoding["offset_mapping"][row][n_prompt:], spans, shifts[row])
            visible = flags
            if args.max_length is not None:  # the collator truncates prompt + completion to `max_length`
                if args.truncation_mode == "keep_start":
                    visible = flags[: max(0, args.max_length - n_prompt)]
                else:
                    visible = flags[max(0, len(flags) - args.max_length) :]
            if status[row] == "ok" and not visible.any():
                status[row] = "empty" if not flags.any() else "truncated"
            output[key].append(flags)
    for row in range(rows):
        if args.signal_mask == "full" or (status[row] != "ok" and args.unmappable_rows == "whole"):
            for key in (CHOSEN_MASK, REJECTED_MASK):
                output[key][row] = np.ones_like(output[key][row])
    output[STATUS] = status
    return output


class SignalAwareDPOTrainer(DPOTrainer):
    """
    Trainer for signal-aware Direct Preference Optimization, the training method of [QiMeng-SALV: Signal-Aware
    Learning for Verilog Code Generation](https://huggingface.co/papers/2510.19296).

    The DPO log-probabilities of the chosen and rejected completions are summed only over the tokens that
    overlap the row's signal spans (`chosen_spans` / `rejected_spans`: `[start, end)` character offsets into
    the completions, e.g. the backward slice of one output signal that is correct in the chosen module and
    wrong in the rejected one). The trainer knows character spans, not Verilog: any preference dataset with
    span columns works.

    How it works: dataset preparation tokenizes the rows exactly as [`~trl.DPOTrainer`] does, then
    re-tokenizes prompt + completion with character offsets (plain text, or the conversation rendered by the
    chat template), checks that the ids are identical, and stores one 0/1 flag per completion token
    (`chosen_signal_mask`, `rejected_signal_mask`). [`DataCollatorForSignalAwarePreference`] narrows
    `completion_mask` with those flags, so the policy, the reference model and the precomputed reference
    log-probabilities are all restricted the same way, for every `loss_type`. Tokens added around the
    completion (the EOS of plain-text rows, the chat template's end-of-turn) lie outside every span. Rows
    whose spans cover no token that survives truncation are dropped or trained whole (`unmappable_rows`), and
    counted in `signal_span_stats`. The share of completion tokens kept is logged as
    `signal/chosen_token_share` and `signal/rejected_token_share`.

    Args:
        model, ref_model, train_dataset, eval_dataset, processing_class, compute_metrics, callbacks,
        optimizers, quantization_config, peft_config:
            As in [`~trl.DPOTrainer`]. The datasets also need the span columns named in `args`.
            `processing_class` must be a fast tokenizer (character offsets); processors of vision models are
            not supported.
        args ([`SignalAwareDPOConfig`], *optional*):
            Training configuration. Defaults to `SignalAwareDPOConfig("<model name>-SALV")`.
        data_collator (`DataCollatorForSignalAwarePreference`, *optional*):
            Defaults to the [`~trl.trainer.dpo_trainer.DataCollatorForPreference`] that [`~trl.DPOTrainer`]
            builds (its padding token included), as a `DataCollatorForSignalAwarePreference`. Another collator
            is refused: it would silently train on whole completions.

    Example:

    ```python
    >>> import tempfile
    >>> from datasets import Dataset
    >>> from salv_trl.tiny import train_tokenizer, tiny_qwen2
    >>> from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer

    >>> # the completions differ in `a` / `~a`; the spans ([start, end) characters) cover just that
    >>> rows = {"prompt": ["Write a buffer.\\n"], "chosen": ["assign y = a;"], "rejected": ["assign y = ~a;"],
    ...         "chosen_spans": [[[11, 12]]], "rejected_spans": [[[11, 13]]]}
    >>> tokenizer = train_tokenizer(rows["prompt"] + rows["chosen"] + rows["rejected"], vocab_size=300)
    >>> output_dir = tempfile.TemporaryDirectory()
    >>> trainer = SignalAwareDPOTrainer(
    ...     model=tiny_qwen2(tokenizer),
    ...     ref_model=tiny_qwen2(tokenizer),  # same weights; trl would load it from the model's path, if any
    ...     args=SignalAwareDPOConfig(
    ...         output_dir.name, max_steps=1, save_strategy="no", report_to="none",
    ...         use_cpu=True, bf16=False,  # on CPU: trl turns bf16 on by default
    ...     ),
    ...     train_dataset=Dataset.from_dict(rows),
    ...     processing_class=tokenizer,
    ... )
    >>> row = trainer.train_dataset[0]
    >>> [tokenizer.decode(i) for i in row["chosen_ids"]], row["chosen_signal_mask"]
    (['assign', ' y', ' =', ' a', ';', '<|im_end|>'], [0, 0, 0, 1, 0, 0])
    >>> trainer.train()  # doctest: +ELLIPSIS
    {...'signal/chosen_token_share': '0.1667', 'signal/rejected_token_share': '0.25'...}
    TrainOutput(global_step=1, ...)
    >>> output_dir.cleanup()

    ```

    Only ` a` of the chosen completion (1 of its 6 tokens, the end-of-turn token included) and `~`, `a` of the
    rejected one (2 of 8) enter the loss, as the logged token shares show.
    """

    _tag_names = ["trl", "dpo", "salv", "signal-aware-dpo"]
    _name = "Signal-aware DPO"
    _paper = {
        "title": "QiMeng-SALV: Signal-Aware Learning for Verilog Code Generation",
        "id": "2510.19296",
        "citation": (
            "@article{salv2025,\n"
            "    title   = {{QiMeng-SALV: Signal-Aware Learning for Verilog Code Generation}},\n"
            "    journal = {arXiv preprint arXiv:2510.19296},\n    year    = {2025}\n}"
        ),
    }

    def __init__(
        self,
        model,
        ref_model=None,
        args: SignalAwareDPOConfig | None = None,
        data_collator: DataCollatorForSignalAwarePreference | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset=None,
        processing_class: PreTrainedTokenizerBase | None = None,
        compute_metrics=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
    ):
        model_id = model if isinstance(model, str) else get_config_model_id(model.config)
        if args is None:
            args = SignalAwareDPOConfig(f"{model_id.split('/')[-1]}-SALV")
        elif not isinstance(args, SignalAwareDPOConfig):
            raise TypeError(f"`args` must be a `SignalAwareDPOConfig`, got `{type(args).__name__}`.")
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(
                model_id,
                revision=(args.model_init_kwargs or {}).get("revision"),
                trust_remote_code=args.trust_remote_code,
            )
        if not isinstance(processing_class, PreTrainedTokenizerBase) or not processing_class.is_fast:
            raise TypeError(
                "`processing_class` must be a fast tokenizer: the spans are mapped with character offsets."
            )
        if data_collator is not None and not isinstance(data_collator, DataCollatorForSignalAwarePreference):
            raise TypeError(
                "`data_collator` must be a `DataCollatorForSignalAwarePreference`; another collator would "
                "ignore the signal masks and train on whole completions."
            )
        self.signal_span_stats: dict[str, SignalSpanStats] = {}
        super().__init__(
            model=model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )

    @property
    def data_collator(self) -> DataCollatorForSignalAwarePreference:
        """The collator; a plain `DataCollatorForPreference` stored here becomes the signal-aware one."""
        return self._data_collator

    @data_collator.setter
    def data_collator(self, collator: DataCollatorForPreference) -> None:
        # trl builds a `DataCollatorForPreference` after its own pad-token handling (`args.pad_token`, else
        # the tokenizer's, else EOS, checked against the vocabulary) and uses it to precompute the reference
        # log-probabilities as soon as `Trainer.__init__` stores it, so the swap happens here, on storing: a
        # new instance with all of its fields (any field trl adds comes along) rather than a `__class__`
        # reassignment of trl's object.
        if not isinstance(collator, DataCollatorForSignalAwarePreference):
            collator = DataCollatorForSignalAwarePreference(
                **{field.name: getattr(collator, field.name) for field in fields(collator)}
            )
        self._data_collator = collator

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase,
        args: SignalAwareDPOConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        if CHOSEN_MASK in (dataset.column_names or ()):
            return dataset  # already prepared (e.g. handed back to `evaluate`)
        for column in (args.chosen_spans_column, args.rejected_spans_column):
            if column not in (dataset.column_names or next(iter(dataset))):
                raise ValueError(f"The {dataset_name} dataset has no `{column}` column of signal spans.")
        before = len(dataset) if isinstance(dataset, Dataset) else None
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        map_kwargs: dict[str, Any] = {}
        if isinstance(dataset, Dataset):  # IterableDataset takes neither `num_proc` nor `desc`
            map_kwargs = {
                "num_proc": args.dataset_num_proc,
                "desc": f"Mapping signal spans of {dataset_name} dataset",
            }
        with global_then_local_main_first():
            dataset = dataset.map(
                _add_signal_masks,
                fn_kwargs={"tokenizer": processing_class, "args": args},
                batched=True,
                **map_kwargs,
            )
            unmappable = True  # unknown for an IterableDataset, which is filtered lazily
            if isinstance(dataset, Dataset):
                counts = Counter(dataset[STATUS])
                stats = SignalSpanStats(
                    len(dataset),
                    counts["empty"],
                    counts["truncated"],
                    args.unmappable_rows,
                    prompt_fills_max_length=before - len(dataset),
                    max_length=args.max_length,
                )
                self.signal_span_stats[dataset_name] = stats
                (logger.warning if stats.unmappable or stats.prompt_fills_max_length else logger.info)(
                    "Signal spans of the %s dataset: %s", dataset_name, stats.describe()
                )
                unmappable = stats.unmappable > 0
            if args.unmappable_rows == "drop" and unmappable:
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Dropping {dataset_name} rows without signal tokens"
                dataset = dataset.filter(lambda example: example[STATUS] == "ok", **map_kwargs)
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        # The collator needs the flags; without them `remove_unused_columns` would drop them before batching
        for column in (CHOSEN_MASK, REJECTED_MASK):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def compute_ref_log_probs(self, model, inputs):
        inputs = {key: value for key, value in inputs.items() if key != COMPLETION_TOKENS}
        return super().compute_ref_log_probs(model, inputs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        completion_tokens = inputs.pop(COMPLETION_TOKENS)
        mode = "train" if self.model.training else "eval"
        signal_tokens = inputs["completion_mask"].sum(dim=1)
        counts = torch.stack([t.sum() for t in (*signal_tokens.chunk(2), *completion_tokens.chunk(2))])
        # a sum over processes; `gather_for_metrics` would cut these four counts as if they were a batch at
        # the end of an epoch whose size is not a multiple of the batch size
        signal_chosen, signal_rejected, total_chosen, total_rejected = self.accelerator.reduce(
            counts.to(self.accelerator.device), reduction="sum"
        ).tolist()
        self._metrics[mode]["signal/chosen_token_share"].append(signal_chosen / max(total_chosen, 1))
        self._metrics[mode]["signal/rejected_token_share"].append(signal_rejected / max(total_rejected, 1))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
    ):
        """
        Write `README.md` in `output_dir`: the salv-trl model card
        ([`~salv_trl.model_card.trainer_model_card`]), filled with the base model, the dataset, the method and
        this run's hyperparameters. Called on every checkpoint, by `push_to_hub`, and by the recipes after
        `save_model`.

        Args:
            model_name (`str`, *optional*):
                Name of the trained model.
            dataset_name (`str`, *optional*):
                Name (Hub id or path) of the training dataset.
            tags (`str` or `list[str]`, *optional*):
                Extra tags for the card's metadata.
        """
        if not self.is_world_process_zero():
            return
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        card = trainer_model_card(self, model_name, dataset_name, tags=self._tag_names + tags)
        card.save(os.path.join(self.args.output_dir, "README.md"))
