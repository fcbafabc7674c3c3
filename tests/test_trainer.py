"""SignalAwareDPOTrainer: the loss counts exactly the tokens of the signal spans, and nothing else changes."""

from __future__ import annotations

import copy
from dataclasses import asdict

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from salv_trl.tiny import IM_END, tiny_preference_rows, tiny_qwen2, train_tokenizer
from salv_trl.trainer import (
    DataCollatorForSignalAwarePreference,
    SignalAwareDPOConfig,
    SignalAwareDPOTrainer,
    token_signal_mask,
)

# Tiny models run fastest single-threaded; more threads only oversubscribe the CI's 2 cores
torch.set_num_threads(1)

ROWS = tiny_preference_rows(8)
LOSS_TYPES = [
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in ROWS] * 4, vocab_size=400)


def make_args(tmp_path, cls=SignalAwareDPOConfig, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        max_steps=2,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=False,  # exact float32 comparisons (trl turns bf16 on where supported, CPUs included)
    )
    return cls(**{**defaults, **kwargs})


def make_trainer(tokenizer, tmp_path, rows=ROWS, cls=SignalAwareDPOTrainer, peft_config=None, **kwargs):
    config_cls = SignalAwareDPOConfig if cls is SignalAwareDPOTrainer else DPOConfig
    return cls(
        model=tiny_qwen2(tokenizer),
        ref_model=None if peft_config or kwargs.get("precompute_ref_log_probs") else tiny_qwen2(tokenizer),
        args=make_args(tmp_path, config_cls, **kwargs),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def batch_of(trainer, n=2):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def char_ranges(tokenizer, ids):
    """Character range of each token, from decoding growing prefixes (independent of the offset mapping)."""
    ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
    return list(zip([0] + ends[:-1], ends, strict=True))


def expected_mask(tokenizer, example, side, spans_column, shift):
    """Flags of the completion tokens overlapping the spans, computed from decoded text."""
    ids = example["prompt_ids"] + example[f"{side}_ids"]
    ranges = char_ranges(tokenizer, ids)[len(example["prompt_ids"]) :]
    spans = [(s + shift, e + shift) for s, e in example[spans_column] if s < e]
    return [int(any(a < e and b > s for s, e in spans)) for a, b in ranges]


def hidden_grad(trainer, batch):
    """Gradient of the loss w.r.t. the final hidden states, the input of the (linear) LM head: position t is
    zero iff
    the logits at t do not enter the loss."""
    model = trainer.model
    norm = (model.get_base_model() if hasattr(model, "get_base_model") else model).model.norm
    captured = {}

    def hook(module, args, output):
        if output.requires_grad:  # the policy's forward, not the reference's
            output.retain_grad()
            captured["hidden"] = output

    handle = norm.register_forward_hook(hook)
    try:
        model.train()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
    finally:
        handle.remove()
    return captured["hidden"].grad.abs().sum(dim=-1)


def assert_grad_follows_mask(trainer, batch):
    grad = hidden_grad(trainer, dict(batch))
    # The log-prob of token t+1 is read from the logits at position t
    in_loss = batch["completion_mask"][:, 1:].bool()
    assert in_loss.any(dim=1).all()
    assert (grad[:, :-1][~in_loss] == 0).all()
    assert (grad[:, -1] == 0).all()
    assert (grad[:, :-1][in_loss] > 0).all()


def test_token_signal_mask_counts_every_overlapping_token():
    offsets = [(0, 3), (3, 6), (6, 6), (6, 9), (9, 12)]
    assert token_signal_mask(offsets, [[4, 5]], shift=0) == [0, 1, 0, 0, 0]  # a span inside one token
    assert token_signal_mask(offsets, [[2, 7]], shift=0) == [
        1,
        1,
        1,
        1,
        0,
    ]  # edges inside tokens; (6, 6) is inside
    assert token_signal_mask(offsets, [[3, 6]], shift=0) == [0, 1, 0, 0, 0]  # edges on token boundaries
    assert token_signal_mask(offsets, [[0, 1], [11, 12]], shift=0) == [1, 0, 0, 0, 1]
    assert token_signal_mask(offsets, [[5, 5]], shift=0) == [0] * 5  # an empty span covers nothing
    assert token_signal_mask(offsets, [[0, 1]], shift=9) == [0, 0, 0, 0, 1]


def test_partial_spans_gradient_is_zero_outside_the_mask(tokenizer, tmp_path):
    trainer = make_trainer(tokenizer, tmp_path)
    example = trainer.train_dataset[0]
    shift = len(ROWS[0]["prompt"])
    for side, column in (("chosen", "chosen_spans"), ("rejected", "rejected_spans")):
        expected = expected_mask(tokenizer, example, side, column, shift)
        assert example[f"{side}_signal_mask"] == expected
        assert 0 < sum(expected) < len(expected)
        # the flagged tokens spell the span's text (an `assign` line)
        ids = [t for t, f in zip(example[f"{side}_ids"], expected, strict=True) if f]
        start, end = ROWS[0][column][0]
        assert ROWS[0][side][start:end].strip() in tokenizer.decode(ids)
    batch = batch_of(trainer)
    assert batch["completion_mask"].sum(dim=1).tolist() == [
        sum(trainer.train_dataset[i][f"{side}_signal_mask"])
        for side in ("chosen", "rejected")
        for i in range(2)
    ]
    assert (batch["completion_mask"].sum(dim=1) < batch["completion_tokens"]).all()
    assert_grad_follows_mask(trainer, batch)


def test_whole_spans_and_full_mode_equal_plain_dpo(tokenizer, tmp_path):
    whole = [dict(r, chosen=r["chosen"] + IM_END, rejected=r["rejected"] + IM_END) for r in ROWS]
    for r in whole:
        r["chosen_spans"], r["rejected_spans"] = [[0, len(r["chosen"])]], [[0, len(r["rejected"])]]
    runs = {
        "dpo": make_trainer(tokenizer, tmp_path / "dpo", rows=whole, cls=DPOTrainer),
        "whole_spans": make_trainer(tokenizer, tmp_path / "whole", rows=whole),
        "full_mode": make_trainer(tokenizer, tmp_path / "full", signal_mask="full"),  # partial spans, ignored
    }
    for trainer in runs.values():
        trainer.train()
    reference = runs.pop("dpo")
    keys = ["loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen"]
    logs = [{k: entry[k] for k in keys} for entry in reference.state.log_history[:-1]]
    for name, trainer in runs.items():
        assert trainer.train_dataset["chosen_ids"] == reference.train_dataset["chosen_ids"]
        ours = [{k: entry[k] for k in keys} for entry in trainer.state.log_history[:-1]]
        for step, (mine, theirs) in enumerate(zip(ours, logs, strict=True)):
            assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-7), (name, step)
        assert trainer.state.log_history[0]["signal/chosen_token_share"] == 1.0
        for p, q in zip(trainer.model.parameters(), reference.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_every_loss_type_keeps_gradient_inside_the_mask(tokenizer, tmp_path):
    trainer = make_trainer(tokenizer, tmp_path, label_smoothing=1e-3)
    batch = batch_of(trainer)
    for loss_type in LOSS_TYPES:
        trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
        trainer.model.zero_grad()
        if loss_type in ("aot", "aot_unpaired", "hinge", "sppo_hard"):
            # with policy == reference, some of these have a zero gradient everywhere: move off that point
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.add_(0.01 * torch.randn_like(p))
        grad = hidden_grad(trainer, dict(batch))
        in_loss = batch["completion_mask"][:, 1:].bool()
        assert (grad[:, :-1][~in_loss] == 0).all(), loss_type
        assert grad[:, :-1][in_loss].sum() > 0, loss_type


def test_span_edge_cases(tokenizer, tmp_path):
    row = ROWS[0]
    head = row["chosen"].index("  assign y")
    merged = dict(
        row,
        prompt=row["prompt"] + "```veri",  # "```verilog" merges across the prompt/completion boundary
        chosen=row["chosen"][len("```veri") :],
        rejected=row["rejected"][len("```veri") :],
        chosen_spans=[[0, 1]],  # "l" only: the merged token counts
        rejected_spans=[[head - 7 + 3, head - 7 + 4]],  # one character inside "assign"
    )
    eos_only = dict(row, chosen_spans=[[0, len(row["chosen"])]], rejected_spans=[[0, len(row["rejected"])]])
    empty = dict(row, chosen_spans=[], task_id="empty")
    trainer = make_trainer(tokenizer, tmp_path, rows=[merged, eos_only, empty])
    assert trainer.signal_span_stats["train"].empty == 1 and len(trainer.train_dataset) == 2
    first, second = trainer.train_dataset[0], trainer.train_dataset[1]
    for side, column in (("chosen", "chosen_spans"), ("rejected", "rejected_spans")):
        assert first[f"{side}_signal_mask"] == expected_mask(
            tokenizer, first, side, column, len(merged["prompt"])
        )
    assert sum(first["chosen_signal_mask"]) == 1 and first["chosen_signal_mask"][0] == 1
    assert "veri" in tokenizer.decode(first["chosen_ids"][:1])  # the boundary token moved into the completion
    assert sum(first["rejected_signal_mask"]) == 1
    assert "assign" in tokenizer.decode(
        [t for t, f in zip(first["rejected_ids"], first["rejected_signal_mask"], strict=True) if f]
    )
    # spans over the whole text: every completion token but the EOS trl appends
    assert second["chosen_signal_mask"] == [1] * (len(second["chosen_ids"]) - 1) + [0]
    assert second["chosen_ids"][-1] == tokenizer.eos_token_id

    whole = make_trainer(tokenizer, tmp_path, rows=[empty], unmappable_rows="whole")
    assert whole.signal_span_stats["train"].empty == 1
    assert whole.train_dataset[0]["chosen_signal_mask"] == [1] * len(whole.train_dataset[0]["chosen_ids"])

    with pytest.raises(ValueError, match="chosen_spans"):
        make_trainer(tokenizer, tmp_path, rows=[dict(row, chosen_spans=[[5, 10_000]])])


def test_truncation_at_max_length(tokenizer, tmp_path):
    row = ROWS[0]
    prompt_len = len(tokenizer(row["prompt"])["input_ids"])
    span_start_token = len(tokenizer(row["prompt"] + row["chosen"][: row["chosen_spans"][0][0]])["input_ids"])
    cut = span_start_token + 2  # keeps two tokens of the span
    trainer = make_trainer(tokenizer, tmp_path, rows=[row], max_length=cut)
    assert trainer.signal_span_stats["train"].truncated == 0
    batch = batch_of(trainer, 1)
    assert batch["input_ids"].shape[1] == cut
    assert 0 < batch["completion_mask"][0].sum() <= 2 + 1  # boundary rounding of one token at most
    assert_grad_follows_mask(trainer, batch)

    beyond = make_trainer(tokenizer, tmp_path, rows=[row, ROWS[1]], max_length=prompt_len + 3)
    assert (
        beyond.signal_span_stats["train"].truncated == 2
        and len(beyond.train_dataset) == 0
        or (beyond.signal_span_stats["train"].truncated == 1 and len(beyond.train_dataset) == 1)
    )
    kept = make_trainer(tokenizer, tmp_path, rows=[row], max_length=prompt_len + 3, unmappable_rows="whole")
    assert kept.signal_span_stats["train"].truncated == 1
    assert batch_of(kept, 1)["completion_mask"][0].sum() == 3


def test_chat_template_rows(tokenizer, tmp_path):
    rows = tiny_preference_rows(4, conversational=True)
    trainer = make_trainer(tokenizer, tmp_path, rows=rows)
    example = trainer.train_dataset[0]
    rendered = tokenizer.apply_chat_template(rows[0]["prompt"] + rows[0]["chosen"], tokenize=False)
    shift = rendered.rindex(rows[0]["chosen"][0]["content"])
    assert example["chosen_signal_mask"] == expected_mask(tokenizer, example, "chosen", "chosen_spans", shift)
    assert 0 < sum(example["chosen_signal_mask"]) and example["chosen_signal_mask"][-2:] == [
        0,
        0,
    ]  # <|im_end|>\n
    assert_grad_follows_mask(trainer, batch_of(trainer))


def masked_logps(model, batch):
    """Sum of the log-probs of the masked tokens, computed from plain logits (independent of trl)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def test_precomputed_reference_logps_use_the_mask(tokenizer, tmp_path):
    trainer = make_trainer(tokenizer, tmp_path, precompute_ref_log_probs=True)
    batch = batch_of(trainer)
    expected = masked_logps(tiny_qwen2(tokenizer), batch)
    got = torch.cat([batch["ref_chosen_logps"], batch["ref_rejected_logps"]])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    trainer.train()
    assert trainer.state.global_step == 2


def test_peft_reference_uses_the_mask_and_trains_only_the_adapter(tokenizer, tmp_path):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = make_trainer(tokenizer, tmp_path, peft_config=lora)
    batch = batch_of(trainer)
    ref = torch.cat(trainer.compute_ref_log_probs(trainer.model, dict(batch)))
    torch.testing.assert_close(ref, masked_logps(tiny_qwen2(tokenizer), batch), rtol=1e-4, atol=1e-4)
    assert_grad_follows_mask(trainer, batch)
    trainer.train()
    assert trainer.state.log_history[0]["signal/chosen_token_share"] < 1


def test_gradient_accumulation_matches_a_large_batch(tokenizer, tmp_path):
    # SGD: Adam's normalisation would blow float noise in near-zero gradients up to learning-rate-sized steps
    large = make_trainer(
        tokenizer, tmp_path / "a", per_device_train_batch_size=4, optim="sgd", learning_rate=0.1
    )
    accumulated = make_trainer(
        tokenizer,
        tmp_path / "b",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        optim="sgd",
        learning_rate=0.1,
    )
    large.train()
    accumulated.train()
    for p, q in zip(large.model.parameters(), accumulated.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_refuses_a_collator_that_would_ignore_the_mask(tokenizer, tmp_path):
    with pytest.raises(TypeError, match="DataCollatorForSignalAwarePreference"):
        SignalAwareDPOTrainer(
            model=tiny_qwen2(tokenizer),
            ref_model=tiny_qwen2(tokenizer),
            args=make_args(tmp_path),
            data_collator=DataCollatorForPreference(pad_token_id=0),
            train_dataset=Dataset.from_list(ROWS),
            processing_class=tokenizer,
        )
    given = DataCollatorForSignalAwarePreference(pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=8)
    trainer = SignalAwareDPOTrainer(
        model=tiny_qwen2(tokenizer),
        ref_model=tiny_qwen2(tokenizer),
        args=make_args(tmp_path),
        data_collator=given,
        train_dataset=Dataset.from_list(ROWS),
        processing_class=tokenizer,
    )
    assert trainer.data_collator is given


def collators(tokenizer, tmp_path, **kwargs):
    """The collators trl's `DPOTrainer` and `SignalAwareDPOTrainer` build from the same arguments, each with a
    copy of `tokenizer` (trl sets its padding token)."""
    plain = make_trainer(copy.deepcopy(tokenizer), tmp_path / "dpo", cls=DPOTrainer, **kwargs)
    signal = make_trainer(copy.deepcopy(tokenizer), tmp_path / "signal", **kwargs)
    return plain.data_collator, signal.data_collator


def test_the_collator_is_trls_own_made_signal_aware(tokenizer, tmp_path):
    plain, signal = collators(tokenizer, tmp_path, max_length=40, pad_to_multiple_of=8)
    assert type(plain) is DataCollatorForPreference and type(signal) is DataCollatorForSignalAwarePreference
    assert asdict(signal) == asdict(plain)
    assert signal.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    assert (signal.max_length, signal.truncation_mode, signal.pad_to_multiple_of) == (40, "keep_start", 8)


def test_padding_token_is_chosen_by_trl(tokenizer, tmp_path):
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    plain, signal = collators(no_pad, tmp_path / "eos")
    assert signal.pad_token_id == plain.pad_token_id == tokenizer.eos_token_id
    with pytest.warns(FutureWarning, match="pad_token"):
        plain, signal = collators(tokenizer, tmp_path / "args", pad_token=IM_END)
    assert signal.pad_token_id == plain.pad_token_id == tokenizer.convert_tokens_to_ids(IM_END)
    # trl checks the deprecated `args.pad_token` against the vocabulary
    with pytest.raises(ValueError, match="not found in the vocabulary"), pytest.warns(FutureWarning):
        make_trainer(copy.deepcopy(tokenizer), tmp_path / "unknown", pad_token="<not a token>")


def test_iterable_dataset_is_filtered_lazily(tokenizer, tmp_path):
    rows = ROWS + [dict(ROWS[0], chosen_spans=[], task_id="empty")]
    trainer = SignalAwareDPOTrainer(
        model=tiny_qwen2(tokenizer),
        ref_model=tiny_qwen2(tokenizer),
        args=make_args(tmp_path, max_steps=1),
        train_dataset=Dataset.from_list(rows).to_iterable_dataset(),
        processing_class=tokenizer,
    )
    prepared = list(trainer.train_dataset)
    assert [row["task_id"] for row in prepared] == [row["task_id"] for row in ROWS]
    assert trainer.signal_span_stats == {}  # not countable without reading the stream
    trainer.train()
    assert 0 < trainer.state.log_history[0]["signal/chosen_token_share"] < 1


def test_an_epoch_ending_in_a_partial_batch_trains(tokenizer, tmp_path):
    # 5 rows in batches of 2: each epoch ends with one row, where accelerate trims what it gathers for metrics
    trainer = make_trainer(tokenizer, tmp_path, rows=ROWS[:5], max_steps=6)
    trainer.train()
    shares = [h["signal/chosen_token_share"] for h in trainer.state.log_history if "loss" in h]
    assert len(shares) == 6 and all(0 < share < 1 for share in shares)
