"""What is trained is what was sampled: prompts rendered by a chat template (with a system message) through
sample → verify → pairs → SignalAwareDPOTrainer, with a tiny tokenizer that has a chat template."""

from __future__ import annotations

import shutil
from functools import partial

import pytest
import torch
from datasets import Dataset

from salv_trl.data.hub import build_info, load_config, render_card, save_config
from salv_trl.data.pairs import (
    CONVERSATIONAL_PAIR_FEATURES,
    PairOptions,
    build_pairs,
    completion_text,
    mask_share,
)
from salv_trl.data.rollouts import VerifySettings
from salv_trl.data.sampling import PromptFormat, format_prompt, sample_completions
from salv_trl.data.stages import pairs_stage, sample_stage, verify_stage
from salv_trl.data.tasks import TASK_FEATURES

SYSTEM = "You only write synthesizable Verilog."
REFERENCE = (
    "module top(input a, input b, output y, output z);\n  assign y = a & b;\n  assign z = a | b;\nendmodule\n"
)


def _completion(y: str, z: str) -> str:
    code = REFERENCE.replace("a & b", y).replace("a | b", z)
    return f"Sure.\n```verilog\n{code}```\nDone."


# Sample 0 gets y right and z wrong, sample 1 the other way round: two signal pairs per task.
COMPLETIONS = (_completion("a & b", "a ^ b"), _completion("a ^ b", "a | b"))
TASKS = [
    {"task_id": "and_or", "prompt": "Write `top`: y = a AND b, z = a OR b.", "reference": REFERENCE},
    {"task_id": "and_or_again", "prompt": "Same module, once more.", "reference": REFERENCE},
]


@pytest.fixture(scope="module")
def tokenizer():
    from salv_trl.tiny import train_tokenizer

    texts = [SYSTEM, REFERENCE, *COMPLETIONS, *(t["prompt"] for t in TASKS)] * 10
    return train_tokenizer(texts, vocab_size=400)


class CannedModel:
    """Stands in for a causal LM in `sample_completions`: answers every prompt with `COMPLETIONS` (sample j
    gets `COMPLETIONS[j]`) and records the prompt ids it was fed, padding removed."""

    device = torch.device("cpu")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.fed: list[list[int]] = []

    def generate(self, input_ids, attention_mask, num_return_sequences, pad_token_id, **kwargs):
        self.fed += [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]
        answers = [self.tokenizer(c + self.tokenizer.eos_token)["input_ids"] for c in COMPLETIONS]
        width = max(map(len, answers))
        rows = [
            ids.tolist() + answers[j] + [pad_token_id] * (width - len(answers[j]))
            for ids in input_ids
            for j in range(num_return_sequences)
        ]
        return torch.tensor(rows)


def test_prompt_formats(tokenizer):
    chat = PromptFormat.of(tokenizer, SYSTEM)
    assert chat == PromptFormat.from_dict(chat.to_dict()) and chat.chat_template
    assert format_prompt(tokenizer, "p", SYSTEM) == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\np<|im_end|>\n<|im_start|>assistant\n"
    )
    assert chat.training_prompt("p") == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "p"},
    ]
    assert chat.training_completion("c") == [{"role": "assistant", "content": "c"}]
    plain = PromptFormat.from_dict(None)
    assert plain == PromptFormat() and plain.training_prompt("p") == "p" == plain.training_completion("p")
    assert PromptFormat(system="s").training_prompt("p") == "s\n\np"
    rollouts = [
        {
            "task_id": "t",
            "prompt": "p",
            "completion": completion,
            "sample_index": i,
            "verdict": {
                "status": "ok",
                "signals": [{"name": "y", "mismatches": int(i != 0), "samples": 10, "correct": i == 0}],
            },
            "slices": [{"signal": "y", "spans": [span], "core_spans": [span]}],
        }
        for i, (completion, span) in enumerate([("good", [0, 2]), ("bad", [1, 3])])
    ]
    [plain_row] = build_pairs(rollouts)
    [chat_row] = build_pairs(rollouts, prompt_format=chat)
    assert plain_row["prompt"] == "p" and plain_row["chosen"] == "good"
    assert chat_row["chosen"] == [{"role": "assistant", "content": "good"}]
    assert completion_text(chat_row["rejected"]) == "bad" == completion_text(plain_row["rejected"])
    assert chat_row["chosen_spans"] == plain_row["chosen_spans"] == [[0, 2]]
    assert (
        mask_share([chat_row])
        == mask_share([plain_row])
        == {"unit": "characters", "chosen": 0.5, "rejected": 2 / 3}
    )


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) not on PATH")
def test_trained_sequences_are_the_sampled_ones(tmp_path, tokenizer):
    from salv_trl.tiny import tiny_qwen2
    from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer

    folder = tmp_path / "ds"
    tasks = Dataset.from_list([{**t, "testbench": None, "top": None} for t in TASKS], features=TASK_FEATURES)
    save_config(tasks, folder, "tasks")
    model = CannedModel(tokenizer)
    generate = partial(
        sample_completions, model, tokenizer, n=2, max_new_tokens=64, progress=False, system=SYSTEM
    )
    info = {"prompt_format": PromptFormat.of(tokenizer, SYSTEM).to_dict()}
    rollouts = sample_stage(folder, generate, n=2, batch_size=2, info=info, progress=False)
    assert rollouts["completion"] == list(COMPLETIONS) * 2 and rollouts["prompt"][0] == TASKS[0]["prompt"]
    assert build_info(folder)["sample"]["prompt_format"] == {"chat_template": True, "system": SYSTEM}
    # one generate call, one row per task
    fed = dict(zip((t["task_id"] for t in TASKS), model.fed, strict=True))

    verify_stage(folder, VerifySettings(vectors=20), workers=2, progress=False)
    pairs = pairs_stage(folder, PairOptions(), tokenizer=tokenizer, progress=False)
    assert pairs.features == CONVERSATIONAL_PAIR_FEATURES
    assert load_config(folder, "pairs").to_list() == pairs.to_list()
    assert len(pairs) == 4 and sorted(map(tuple, pairs["signals"])) == [("y",), ("y",), ("z",), ("z",)]
    assert build_info(folder)["pairs"]["conversational"]
    assert "Rows are conversational" in str(render_card(folder))
    verified = {(r["task_id"], r["completion"]): r for r in load_config(folder, "rollouts")}
    for pair in pairs:
        assert pair["prompt"] == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": next(t["prompt"] for t in TASKS if t["task_id"] == pair["task_id"])},
        ]
        for side in ("chosen", "rejected"):
            [message] = pair[side]
            assert message["role"] == "assistant" and message["content"] in COMPLETIONS
            # spans unchanged: the slice of the contrast signal in that rollout, offsets into the content
            [signal] = pair["signals"]
            slices = verified[pair["task_id"], message["content"]]["slices"]
            assert pair[f"{side}_spans"] == next(s["spans"] for s in slices if s["signal"] == signal)

    trainer = SignalAwareDPOTrainer(
        model=tiny_qwen2(tokenizer, hidden_size=32),
        ref_model=tiny_qwen2(tokenizer, hidden_size=32),
        args=SignalAwareDPOConfig(
            str(tmp_path / "out"), report_to="none", use_cpu=True, bf16=False, max_length=None
        ),
        train_dataset=pairs,
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(pairs)
    for row, pair in zip(prepared, pairs, strict=True):
        # the training prompt is token for token the one the sampler fed the model
        assert row["prompt_ids"] == fed[pair["task_id"]]
        sampled_prompt = format_prompt(tokenizer, pair["prompt"][1]["content"], SYSTEM)
        for side in ("chosen", "rejected"):
            content = pair[side][0]["content"]
            text = tokenizer.decode(row["prompt_ids"] + row[f"{side}_ids"])
            assert text == sampled_prompt + content + "<|im_end|>\n"  # what trl trains on
            flags = row[f"{side}_signal_mask"]
            assert len(flags) == len(row[f"{side}_ids"]) and 0 < sum(flags) < len(flags)
            # every run of flagged tokens decodes to one span's text, give or take the whitespace a token
            # carries across the span's edge
            runs, run = [], []
            for token, flag in zip(row[f"{side}_ids"], flags, strict=True):
                if flag:
                    run.append(token)
                elif run:
                    runs.append(run)
                    run = []
            runs += [run] if run else []
            span_texts = [content[s:e] for s, e in pair[f"{side}_spans"]]
            assert [tokenizer.decode(r).strip() for r in runs] == [t.strip() for t in span_texts]
            # and the flagged characters are exactly the span characters, inside the rendered chat text
            offsets = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
            shift = len(sampled_prompt)
            chars = {
                i
                for (s, e), f in zip(offsets[len(row["prompt_ids"]) :], flags, strict=True)
                if f
                for i in range(s, e)
            }
            spans = {shift + i for s, e in pair[f"{side}_spans"] for i in range(s, e)}
            assert spans <= chars and all(text[i].isspace() for i in chars - spans)
