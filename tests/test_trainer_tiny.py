"""salv_trl.tiny: an in-process tokenizer and a tiny Qwen2, no download."""

from __future__ import annotations

import torch

from salv_trl.tiny import IM_END, tiny_qwen2, train_tokenizer

CORPUS = ["module top(input a, output y); assign y = a; endmodule"] * 20 + ["Write a Verilog module."] * 5


def test_tokenizer_round_trips_and_has_chat_template():
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    text = "module weird_ñame(input [3:0] x); // ünïcode\nendmodule"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: nothing is unknown
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token_id != tokenizer.eos_token_id
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith(prompt)


def test_tiny_qwen2_is_small_deterministic_and_runs():
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    model, again = tiny_qwen2(tokenizer), tiny_qwen2(tokenizer)
    assert model.num_parameters() < 1_000_000
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True))
    out = model.generate(**tokenizer("module", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, len(tokenizer("module")["input_ids"]) + 4)
