"""Configuration of the [`SignalAwareDPOTrainer`]."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

SIGNAL_MASK_MODES = ("signal", "full")
UNMAPPABLE_ROW_POLICIES = ("drop", "whole")


@dataclass
class SignalAwareDPOConfig(DPOConfig):
    r"""
    Configuration class for the [`SignalAwareDPOTrainer`].

    It adds to [`~trl.DPOConfig`] the parameters of signal-aware DPO (QiMeng-SALV, arXiv 2510.19296): the DPO
    log-probabilities of the chosen and rejected completions are summed over the tokens that overlap the row's
    signal spans only. Every other parameter, including `loss_type`, `beta`, `max_length` and
    `precompute_ref_log_probs`, keeps its [`~trl.DPOConfig`] meaning.

    Parameters:
        > Parameters that control the signal mask

        chosen_spans_column (`str`, *optional*, defaults to `"chosen_spans"`):
            Dataset column with the `[start, end)` character offsets of the signal spans in the chosen
            completion (the text of its single assistant message for conversational rows).
        rejected_spans_column (`str`, *optional*, defaults to `"rejected_spans"`):
            Same, for the rejected completion.
        signal_mask (`str`, *optional*, defaults to `"signal"`):
            `"signal"`: the loss counts only the completion tokens that overlap a span. `"full"`: every
            completion token counts, i.e. plain DPO on the same rows (rows are kept or dropped exactly as in
            `"signal"` mode), for ablations.
        unmappable_rows (`str`, *optional*, defaults to `"drop"`):
            What to do with a row whose chosen or rejected spans cover no token that survives truncation to
            `max_length` (empty spans, or spans past the truncation point). `"drop"`: remove the row.
            `"whole"`: train on its whole completions, as plain DPO would. Such rows are counted per dataset
            and logged.
    """

    chosen_spans_column: str = field(
        default="chosen_spans",
        metadata={
            "help": "Column with the [start, end) character spans of the signal in the chosen completion."
        },
    )
    rejected_spans_column: str = field(
        default="rejected_spans",
        metadata={
            "help": "Column with the [start, end) character spans of the signal in the rejected completion."
        },
    )
    signal_mask: str = field(
        default="signal",
        metadata={
            "help": "'signal': the loss counts only completion tokens overlapping a span. 'full': all "
            "completion tokens (plain DPO on the same rows, for ablations).",
            "choices": list(SIGNAL_MASK_MODES),
        },
    )
    unmappable_rows: str = field(
        default="drop",
        metadata={
            "help": "Rows whose spans cover no token within max_length: 'drop' them, or train on the 'whole' "
            "completions.",
            "choices": list(UNMAPPABLE_ROW_POLICIES),
        },
    )

    def __post_init__(self):
        if self.signal_mask not in SIGNAL_MASK_MODES:
            raise ValueError(f"`signal_mask` must be one of {SIGNAL_MASK_MODES}, got {self.signal_mask!r}.")
        if self.unmappable_rows not in UNMAPPABLE_ROW_POLICIES:
            raise ValueError(
                f"`unmappable_rows` must be one of {UNMAPPABLE_ROW_POLICIES}, got {self.unmappable_rows!r}."
            )
        super().__post_init__()
