"""Task loading (canonical and seed formats), `salv-trl sample` with a tiny in-process model, and the vLLM
route's sampling settings."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import fields

import pytest
from conftest import requires_benchmarks
from datasets import load_dataset

from salv_trl.cli import main
from salv_trl.data.hub import build_info, load_config
from salv_trl.data.sampling import (
    SamplingSettings,
    format_prompt,
    model_generation_config,
    sample_completions,
    sample_completions_vllm,
    vllm_sampling_kwargs,
)
from salv_trl.data.tasks import load_tasks

REFERENCE = (
    "module top(input a, input b, output y, output z);\n  assign y = a & b;\n  assign z = a | b;\nendmodule\n"
)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_seed_format_imports_as_is(tmp_path):
    seed = [
        {
            "problem_id": 7,
            "instruction": "Write an AND.",
            "gold_code": REFERENCE,
            "port_names": ["a", "b", "y", "z"],
            "testbench": "module tb; endmodule",
        },
        {
            "problem_id": 8,
            "instruction": "Again.",
            "gold_code": REFERENCE,
            "port_names": ["a"],
            "testbench": "",
        },
    ]
    tasks = load_tasks(_write_jsonl(tmp_path / "seed.jsonl", seed))
    assert tasks.column_names == ["task_id", "prompt", "reference", "testbench", "top"]
    assert tasks[0] == {
        "task_id": "7",
        "prompt": "Write an AND.",
        "reference": REFERENCE,
        "testbench": "module tb; endmodule",
        "top": None,
    }
    assert tasks[1]["testbench"] is None


def test_task_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="lacks column"):
        load_tasks(_write_jsonl(tmp_path / "bad.jsonl", [{"task_id": "a", "prompt": "p"}]))
    dup = [{"task_id": "a", "prompt": "p", "reference": REFERENCE}] * 2
    with pytest.raises(ValueError, match="unique"):
        load_tasks(_write_jsonl(tmp_path / "dup.jsonl", dup))
    with pytest.raises(ValueError, match="not found"):
        load_tasks(tmp_path / "missing.jsonl")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models generate fastest on one thread: on a busy 2-core CI box more threads spin on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from salv_trl.tiny import tiny_qwen2, train_tokenizer

    tokenizer = train_tokenizer(
        [REFERENCE, "Write a Verilog module.", "```verilog\n" + REFERENCE + "```"] * 20, 400
    )
    model = tiny_qwen2(tokenizer, hidden_size=32)
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_sample_completions_shapes_and_chat_template(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert format_prompt(tokenizer, "hi").startswith("<|im_start|>user\nhi")
    prompts = ["Write an AND.", "Write an OR gate with two inputs, please."]
    out = sample_completions(
        model, tokenizer, prompts, n=3, max_new_tokens=8, seed=1, batch_size=2, progress=False
    )
    assert [len(c) for c in out] == [3, 3] and all(isinstance(t, str) for c in out for t in c)
    assert tokenizer.padding_side == "right"  # restored after left-padded generation
    again = sample_completions(
        model, tokenizer, prompts, n=3, max_new_tokens=8, seed=1, batch_size=2, progress=False
    )
    assert out == again  # the seed makes sampling reproducible
    greedy = sample_completions(
        model, tokenizer, prompts[:1], n=2, temperature=0, max_new_tokens=8, progress=False
    )
    assert greedy[0][0] == greedy[0][1]


def test_sample_cli_writes_tasks_and_rollouts(tmp_path, tiny_model_dir):
    tasks = [{"task_id": f"t{i}", "prompt": f"Write module {i}.", "reference": REFERENCE} for i in range(3)]
    out = tmp_path / "ds"
    argv = [
        "sample",
        str(_write_jsonl(tmp_path / "tasks.jsonl", tasks)),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(out),
        "--n",
        "2",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    rollouts = load_dataset(str(out), "rollouts", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert rollouts.column_names == ["task_id", "prompt", "completion", "sample_index"]
    assert [(r["task_id"], r["sample_index"]) for r in rollouts] == [
        (f"t{i}", j) for i in range(3) for j in range(2)
    ]
    assert load_config(out, "tasks")["task_id"] == ["t0", "t1", "t2"]
    info = build_info(out)
    assert info["sample"]["model"] == str(tiny_model_dir) and info["sample"]["n"] == 2
    assert info["sample"]["top_p"] == 0.95 and info["sample"]["temperature"] == 1.0
    assert not (out / ".work" / "sample").exists()  # shards compacted away
    # A finished stage does nothing on a re-run: the rows stay exactly as they were.
    assert main(argv) == 0
    assert load_config(out, "rollouts").to_list() == rollouts.to_list()


@requires_benchmarks
def test_benchmark_layouts_are_task_sets(benchmarks_dir):
    rtllm = load_tasks(benchmarks_dir, benchmark="rtllm-v1.1")
    assert len(rtllm) == 29 and rtllm[0]["task_id"] == "JC_counter" and rtllm[0]["top"] == "JC_counter"
    assert "verified_" in rtllm[0]["reference"] and rtllm[0]["testbench"] is None
    v2 = load_tasks(benchmarks_dir / "verilog-eval-v2", benchmark="verilog-eval-v2-spec-to-rtl")
    assert len(v2) == 156 and set(v2["top"]) == {"TopModule"} and "RefModule" in v2[0]["reference"]
    with pytest.raises(ValueError, match="--benchmark"):
        load_tasks(benchmarks_dir)


# The keyword arguments of vLLM's `SamplingParams`, as its source documents them (vllm/sampling_params.py of
# vllm-project/vllm, read at commit 00388f6573cc): vLLM does not install on this CPU machine.
VLLM_SAMPLING_PARAMS = frozenset(
    "n presence_penalty frequency_penalty repetition_penalty temperature top_p top_k min_p seed stop "
    "stop_token_ids ignore_eos max_tokens min_tokens logprobs prompt_logprobs prompt_logprob_token_ids "
    "prompt_logprob_start logprob_token_ids flat_logprobs detokenize skip_special_tokens "
    "spaces_between_special_tokens include_stop_str_in_output output_kind stream_interval skip_clone "
    "structured_outputs logit_bias allowed_token_ids extra_args bad_words skip_reading_prefix_cache "
    "thinking_token_budget repetition_detection routed_experts_prompt_start trace_decode_token_ids".split()
)


def test_sampling_settings_map_one_to_one_to_vllm_sampling_params(tiny_model_dir):
    from transformers import AutoTokenizer, GenerationConfig

    settings = SamplingSettings(n=5, temperature=0.7, top_p=0.9, max_new_tokens=321, seed=7, batch_size=3)
    kwargs = vllm_sampling_kwargs(settings, model_generation_config(str(tiny_model_dir)))
    assert set(kwargs) <= VLLM_SAMPLING_PARAMS
    # every setting but batch_size (vLLM schedules its own batches) is a SamplingParams field, same value
    renamed = {"max_new_tokens": "max_tokens"}
    for field in fields(SamplingSettings):
        if field.name != "batch_size":
            assert kwargs[renamed.get(field.name, field.name)] == getattr(settings, field.name), field.name
    # and what `generate` takes from the tiny model's generation config (none set: transformers' defaults)
    eos = AutoTokenizer.from_pretrained(tiny_model_dir).eos_token_id
    taken = ("top_k", "min_p", "repetition_penalty", "min_tokens", "stop_token_ids")
    assert [kwargs[k] for k in taken] == [50, 0.0, 1.0, 0, [eos]]
    assert kwargs["skip_special_tokens"] is True  # as `sample_completions` decodes
    # a generation config like Qwen2.5-Coder-Instruct's: its sampling options carry over
    qwen_like = GenerationConfig(
        top_k=20, repetition_penalty=1.05, min_p=0.05, min_new_tokens=2, eos_token_id=[7, 9]
    )
    carried = vllm_sampling_kwargs(settings, qwen_like)
    assert (carried["top_k"], carried["repetition_penalty"], carried["min_p"], carried["min_tokens"]) == (
        20, 1.05, 0.05, 2
    )  # fmt: skip
    assert carried["stop_token_ids"] == [7, 9]
    # greedy: one completion asked of vLLM (it refuses n > 1 when greedy), repeated by the route
    assert vllm_sampling_kwargs(SamplingSettings(n=5, temperature=0.0))["n"] == 1
    with pytest.raises(ValueError, match="typical_p"):
        vllm_sampling_kwargs(settings, GenerationConfig(typical_p=0.9))


def test_vllm_route_builds_its_params_and_repeats_a_greedy_completion(tiny_model_dir, monkeypatch):
    """`sample_completions_vllm` against a stand-in for vLLM that keeps vLLM's own checks on the arguments
    (only documented fields; n must be 1 when greedy) and records what it is given."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    class SamplingParams:
        def __init__(self, **kwargs):
            assert set(kwargs) <= VLLM_SAMPLING_PARAMS, set(kwargs) - VLLM_SAMPLING_PARAMS
            if kwargs["temperature"] == 0 and kwargs["n"] > 1:
                raise ValueError("n must be 1 when using greedy sampling")
            self.__dict__.update(kwargs)

    class LLM:
        def get_tokenizer(self):
            return tokenizer

        def generate(self, requests, params, use_tqdm):
            self.requests, self.params = requests, params
            return [
                types.SimpleNamespace(
                    outputs=[types.SimpleNamespace(text=f"{i}.{j}") for j in range(params.n)]
                )
                for i in range(len(requests))
            ]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=SamplingParams))
    llm = LLM()
    assert sample_completions_vllm(llm, ["a", "b"], n=3, temperature=0.0) == [["0.0"] * 3, ["1.0"] * 3]
    assert sample_completions_vllm(llm, ["a"], n=3, max_new_tokens=9) == [["0.0", "0.1", "0.2"]]
    assert (llm.params.n, llm.params.max_tokens, llm.params.top_p) == (3, 9, 0.95)
    # token ids of the chat-templated prompt, as the transformers route tokenizes it
    expected = tokenizer(format_prompt(tokenizer, "a"), add_special_tokens=False)["input_ids"]
    assert llm.requests == [{"prompt_token_ids": expected}]
