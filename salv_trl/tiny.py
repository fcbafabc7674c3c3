"""Tiny, download-free models for tests, examples and CPU smoke runs.

[`train_tokenizer`] trains a byte-level BPE tokenizer in-process with the `tokenizers` library, with the
special tokens and a chat template in the style of Qwen2.5 (`<|im_start|>role\\n...<|im_end|>`), so both
plain-text and conversational rows work with trl's trainers. [`tiny_qwen2`] builds a randomly initialised
[`~transformers.Qwen2ForCausalLM`] from a config sized for that tokenizer.

Example:

```python
>>> from salv_trl.tiny import train_tokenizer, tiny_qwen2
>>> tokenizer = train_tokenizer(["module top(input a, output y); assign y = a; endmodule"] * 10,
...                             vocab_size=300)
>>> model = tiny_qwen2(tokenizer)
>>> model.num_parameters() < 1_000_000
True

```
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

# Qwen2.5's layout without its tool-calling branches. The `generation` block marks assistant tokens, so
# SFT with `assistant_only_loss=True` works too.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """
    Train a byte-level BPE tokenizer on `texts`, in-process and without any download.

    The tokenizer never produces unknown tokens (the 256 byte symbols are always in the vocabulary), adds no
    BOS, and uses `<|im_end|>` as EOS and `<|endoftext|>` as padding, as Qwen2.5 instruct models do.

    Args:
        texts (`Iterable[str]`):
            Training corpus.
        vocab_size (`int`, *optional*, defaults to `512`):
            Target vocabulary size, special tokens and the 256 byte symbols included.
        min_frequency (`int`, *optional*, defaults to `2`):
            Minimum pair frequency for a merge.

    Returns:
        [`~transformers.PreTrainedTokenizerFast`]: with `eos_token`, `pad_token` and `chat_template` set.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )


def tiny_qwen2(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """
    Build a randomly initialised [`~transformers.Qwen2ForCausalLM`] for `tokenizer` from a config (no
    download).

    With the defaults and a 512-token vocabulary the model has about 0.1M parameters; it has the same module
    names as Qwen2.5 (`q_proj`, ..., `down_proj`), so LoRA configs written for the real model apply to it.

    Args:
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]):
            Tokenizer whose vocabulary, EOS and padding tokens the model uses.
        hidden_size (`int`, *optional*, defaults to `64`):
            Model width.
        num_hidden_layers (`int`, *optional*, defaults to `2`):
            Number of decoder layers.
        num_attention_heads (`int`, *optional*, defaults to `4`):
            Number of query heads.
        num_key_value_heads (`int`, *optional*, defaults to `2`):
            Number of key/value heads (grouped-query attention as in Qwen2.5).
        intermediate_size (`int`, *optional*):
            MLP width; defaults to `4 * hidden_size`.
        max_position_embeddings (`int`, *optional*, defaults to `2048`):
            Longest sequence the rotary embedding is configured for.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the weight initialisation, so that two calls give the same model.

    Returns:
        [`~transformers.Qwen2ForCausalLM`]: in float32, in eval mode as `from_pretrained` returns models.
    """
    import torch

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def tiny_preference_rows(n: int = 32, seed: int = 0, conversational: bool = False) -> list[dict]:
    """
    A synthetic signal-aware preference set in the schema of salv-trl's pair datasets, for tests and CPU smoke
    runs.

    Each row asks for a small module with two outputs; the chosen and the rejected completion differ in the
    expression of one output (the contrast signal), and `chosen_spans` / `rejected_spans` cover that output's
    `assign` statement. No simulation is involved: the rows only exercise the training machinery.

    Args:
        n (`int`, *optional*, defaults to `32`):
            Number of rows.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the random choices.
        conversational (`bool`, *optional*, defaults to `False`):
            Whether prompt and completions are chat messages (`[{"role": ..., "content": ...}]`) instead of
            text.

    Returns:
        `list[dict]`: rows with `prompt`, `chosen`, `rejected`, `chosen_spans`, `rejected_spans`, `signals`,
        `task_id`.
    """
    import random

    rng = random.Random(seed)
    operators = ["&", "|", "^", "+", "-"]
    rows = []
    for index in range(n):
        width = rng.choice([1, 4, 8])
        good, bad = rng.sample(operators, 2)
        other = rng.choice(operators)
        prompt = (
            f"Write a Verilog module top_{index} with {width}-bit inputs a and b: "
            f"y = a {good} b, z = a {other} b.\n"
        )

        def completion(op: str, index=index, width=width, other=other) -> tuple[str, list[list[int]]]:
            head = (
                f"```verilog\nmodule top_{index}(input [{width - 1}:0] a, b, output [{width - 1}:0] y, z);\n"
            )
            line = f"  assign y = a {op} b;\n"
            tail = f"  assign z = a {other} b;\nendmodule\n```"
            return head + line + tail, [[len(head), len(head) + len(line)]]

        chosen, chosen_spans = completion(good)
        rejected, rejected_spans = completion(bad)
        row = {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "chosen_spans": chosen_spans,
            "rejected_spans": rejected_spans,
            "signals": ["y"],
            "task_id": f"top_{index}",
        }
        if conversational:
            row["prompt"] = [{"role": "user", "content": prompt}]
            row["chosen"] = [{"role": "assistant", "content": chosen}]
            row["rejected"] = [{"role": "assistant", "content": rejected}]
        rows.append(row)
    return rows
