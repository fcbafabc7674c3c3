"""Sampling N completions per prompt with transformers `generate` (or vLLM when installed), and the resumable
rollout stage built on it.

Defaults follow the paper's released pipeline: 5 samples per prompt, temperature 1.0, top_p 0.95, at most 2048
new tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm.auto import tqdm

from ..progress import advance
from .shards import ShardStore

__all__ = [
    "PromptFormat",
    "SamplingSettings",
    "format_prompt",
    "model_generation_config",
    "rollout_key",
    "sample_completions",
    "sample_completions_vllm",
    "sample_rollouts",
    "vllm_sampling_kwargs",
]


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are sampled (recorded in the dataset card).

    Args:
        n (`int`, defaults to `5`): Completions per prompt.
        temperature (`float`, defaults to `1.0`): Sampling temperature; `0` means greedy decoding.
        top_p (`float`, defaults to `0.95`): Nucleus sampling mass.
        max_new_tokens (`int`, defaults to `2048`): Longest completion, in tokens.
        seed (`int`, defaults to `0`): Random seed set before sampling.
        batch_size (`int`, defaults to `8`): Prompts per `generate` call (each yields `n` sequences).
    """

    n: int = 5
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 2048
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self):
        if self.n < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("n, batch_size and max_new_tokens must be positive")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PromptFormat:
    """How a prompt is rendered for the model. The `sample` stage records it so that `pairs` gives trl the
    very text the completions were sampled from.

    Args:
        chat_template (`bool`, defaults to `False`): The prompt is the user turn of the tokenizer's chat
            template, followed by the assistant's generation prompt; otherwise it is plain text.
        system (`str`, *optional*): System message: the first turn with a chat template; without one, it
            precedes the prompt, separated by a blank line.
    """

    chat_template: bool = False
    system: str | None = None

    @classmethod
    def of(cls, tokenizer, system: str | None = None) -> PromptFormat:
        """The format used with `tokenizer`: its chat template when it has one."""
        return cls(bool(getattr(tokenizer, "chat_template", None)), system or None)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PromptFormat:
        """Inverse of [`to_dict`]; `None` (no record, e.g. rollouts made elsewhere) is plain text."""
        return cls(**(data or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat messages of `prompt`: the system message if any, then the user turn."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": "user", "content": prompt}]

    def training_prompt(self, prompt: str) -> str | list[dict[str, str]]:
        """`prompt` as the `prompt` column of a trl dataset: messages with a chat template, else the text."""
        if self.chat_template:
            return self.messages(prompt)
        return f"{self.system}\n\n{prompt}" if self.system else prompt

    def training_completion(self, completion: str) -> str | list[dict[str, str]]:
        """`completion` as a trl completion column: an assistant message with a chat template, else as is."""
        return [{"role": "assistant", "content": completion}] if self.chat_template else completion

    def render(self, tokenizer, prompt: str) -> str:
        """The text the model is conditioned on, as trl renders [`training_prompt`] for the prompt alone."""
        if self.chat_template:
            return tokenizer.apply_chat_template(
                self.messages(prompt), tokenize=False, add_generation_prompt=True
            )
        return self.training_prompt(prompt)


def format_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The text the model is conditioned on: the prompt (after the system message, if any) as a user turn of
    the chat template when the tokenizer has one, else the prompt itself; see [`PromptFormat`]."""
    return PromptFormat.of(tokenizer, system).render(tokenizer, prompt)


def sample_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    n: int = 5,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 2048,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    system: str | None = None,
) -> list[list[str]]:
    """Sample `n` completions for each prompt with `model.generate`, batched, with left padding.

    Args:
        model (`transformers.PreTrainedModel`): A causal LM.
        tokenizer (`transformers.PreTrainedTokenizerBase`): Its tokenizer; its chat template is applied when
            it has one.
        prompts (`Sequence[str]`): User prompts.
        n, temperature, top_p, max_new_tokens, seed, batch_size: see [`SamplingSettings`].
        progress (`bool`, defaults to `True`): Show a progress bar over prompts.
        system (`str`, *optional*): System message (see [`PromptFormat`]).

    Returns:
        `list[list[str]]`: for each prompt, `n` decoded completions (new tokens only, special tokens removed).
    """
    import torch
    from transformers import set_seed

    settings = SamplingSettings(n, temperature, top_p, max_new_tokens, seed, batch_size)
    prompt_format = PromptFormat.of(tokenizer, system)
    set_seed(settings.seed)
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues the right end of every row
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > 0
        else {"do_sample": False}
    )
    # Greedy decoding gives one answer per prompt: generate it once and repeat it n times.
    per_call = n if temperature > 0 else 1
    results: list[list[str]] = []
    try:
        bar = tqdm(total=len(prompts), desc="sampling", unit="prompt", disable=not progress)
        for start in range(0, len(prompts), settings.batch_size):
            texts = [prompt_format.render(tokenizer, p) for p in prompts[start : start + settings.batch_size]]
            # Tokenized as trl tokenizes the training prompt: the chat template already holds any special
            # tokens the model expects, plain text gets the tokenizer's own (e.g. BOS).
            inputs = tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=not prompt_format.chat_template
            ).to(model.device)
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=per_call,
                    pad_token_id=pad_token_id,
                    **sampling,
                )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            results += [
                decoded[i * per_call : (i + 1) * per_call] * (n // per_call) for i in range(len(texts))
            ]
            advance(bar, len(texts))
        bar.close()
    finally:
        tokenizer.padding_side = padding_side
    return results


# Sampling settings a generation config can carry that transformers' `generate` applies and vLLM has no
# counterpart for, with their neutral values: a config that sets one would sample differently in vLLM.
_NO_VLLM_COUNTERPART = {
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "num_beams": 1,
    "bad_words_ids": None,
    "sequence_bias": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
}


def model_generation_config(model: str):
    """The generation config `generate` uses for `model` (a Hub id or a folder): its `generation_config.json`,
    else the one transformers derives from its config. Pass it to [`sample_completions_vllm`]."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model)
    except OSError:
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(model))


def vllm_sampling_kwargs(settings: SamplingSettings, generation_config=None) -> dict[str, Any]:
    """The keyword arguments of vLLM's `SamplingParams` that sample as [`sample_completions`] does.

    One to one: `n`, `temperature`, `top_p`, `max_new_tokens` → `max_tokens` and `seed` from `settings`
    (`batch_size` has none: vLLM schedules its own batches), and what `generate` takes from the model's
    generation config: `top_k` (transformers' default 50 when unset), `min_p`, `repetition_penalty`,
    `min_new_tokens` → `min_tokens`, and its EOS ids → `stop_token_ids`. Completions are decoded without
    special tokens in both. Greedy decoding (`temperature` 0) asks vLLM for one completion, which the caller
    repeats `n` times, as `sample_completions` does (vLLM refuses `n > 1` when greedy).

    Args:
        settings ([`SamplingSettings`]): The sampling settings.
        generation_config (`transformers.GenerationConfig`, *optional*): The model's generation config
            ([`model_generation_config`]); transformers' defaults when not given.

    Returns:
        `dict[str, Any]`: `SamplingParams(**kwargs)` keyword arguments.

    Raises:
        `ValueError`: the generation config sets a sampling option vLLM cannot apply (e.g. `typical_p`).
    """
    from transformers import GenerationConfig

    config = generation_config or GenerationConfig()
    unmatched = [
        name
        for name, neutral in _NO_VLLM_COUNTERPART.items()
        if getattr(config, name, None) not in (None, neutral)
    ]
    if unmatched:
        raise ValueError(f"vLLM cannot sample with the model's generation config: {', '.join(unmatched)} set")
    eos = config.eos_token_id
    return {
        "n": settings.n if settings.temperature > 0 else 1,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": 50 if config.top_k is None else config.top_k,  # 0 turns it off in both
        "min_p": config.min_p or 0.0,
        "repetition_penalty": config.repetition_penalty or 1.0,
        "max_tokens": settings.max_new_tokens,
        "min_tokens": config.min_new_tokens or 0,
        "seed": settings.seed,
        "stop_token_ids": [] if eos is None else [eos] if isinstance(eos, int) else list(eos),
        "skip_special_tokens": True,
    }


def sample_completions_vllm(
    llm,
    prompts: Sequence[str],
    n: int = 5,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 2048,
    seed: int = 0,
    system: str | None = None,
    generation_config=None,
) -> list[list[str]]:
    """[`sample_completions`] with vLLM (extra `vllm`): same prompt formatting and token ids, same sampling
    settings ([`vllm_sampling_kwargs`]), same output.

    Args:
        llm (`vllm.LLM`): The engine, built once by the caller (e.g. `LLM(model=name, seed=seed)`).
        prompts, n, temperature, top_p, max_new_tokens, seed, system: as in [`sample_completions`].
        generation_config (`transformers.GenerationConfig`, *optional*): The model's generation config
            ([`model_generation_config`]), whose sampling options `generate` applies too.
    """
    from vllm import SamplingParams

    settings = SamplingSettings(n, temperature, top_p, max_new_tokens, seed)
    params = SamplingParams(**vllm_sampling_kwargs(settings, generation_config))
    tokenizer = llm.get_tokenizer()
    prompt_format = PromptFormat.of(tokenizer, system)
    # Token ids, not text: vLLM would add the tokenizer's special tokens to a rendered chat template again.
    ids = tokenizer(
        [prompt_format.render(tokenizer, p) for p in prompts],
        add_special_tokens=not prompt_format.chat_template,
    )["input_ids"]
    outputs = llm.generate([{"prompt_token_ids": i} for i in ids], params, use_tqdm=False)
    # greedy: one completion per prompt, repeated
    return [[choice.text for choice in output.outputs] * (n // params.n) for output in outputs]


def rollout_key(row: dict) -> tuple[str, int]:
    """Identity of a rollout row: its task and sample index."""
    return row["task_id"], row["sample_index"]


def sample_rollouts(
    tasks: Sequence[dict],
    generate: Callable[[list[str]], list[list[str]]],
    store: ShardStore,
    *,
    n: int,
    batch_size: int = 8,
    progress: bool = True,
) -> int:
    """Write `n` rollout rows per task to `store`, skipping tasks whose rollouts are already there.

    Args:
        tasks (`Sequence[dict]`): Task rows (`task_id`, `prompt`, ...).
        generate (`Callable[[list[str]], list[list[str]]]`): Prompts to `n` completions each, e.g. a partial
            of [`sample_completions`].
        store ([`ShardStore`]): Where rows go; keyed by [`rollout_key`].
        n (`int`): Completions per task.
        batch_size (`int`, defaults to `8`): Tasks per call of `generate`; also the unit of work lost to a
            kill.
        progress (`bool`, defaults to `True`): Show a progress bar over tasks.

    Returns:
        `int`: the number of tasks sampled by this call.
    """
    done = store.done()
    todo = [t for t in tasks if any((t["task_id"], i) not in done for i in range(n))]
    bar = tqdm(
        total=len(tasks), initial=len(tasks) - len(todo), desc="rollouts", unit="task", disable=not progress
    )
    for b in range(math.ceil(len(todo) / batch_size)):
        batch = todo[b * batch_size : (b + 1) * batch_size]
        completions = generate([t["prompt"] for t in batch])
        store.write(
            {"task_id": t["task_id"], "prompt": t["prompt"], "completion": text, "sample_index": i}
            for t, texts in zip(batch, completions, strict=True)
            for i, text in enumerate(texts)
            if (t["task_id"], i) not in done
        )
        advance(bar, len(batch))
    bar.close()
    return len(todo)
