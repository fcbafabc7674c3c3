"""The synthetic task family: determinism, disjoint splits, references that do what prompts say."""

from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess

import pytest

from salv_trl.hdl.slicing import slice_signals
from salv_trl.synthetic import SyntheticTask, generate_tasks, sft_dataset, tasks_dataset
from salv_trl.synthetic.tasks import TOP
from salv_trl.tiny import train_tokenizer

requires_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")


def test_same_seed_same_tasks_other_seed_other_tasks():
    first = [t.row() for t in generate_tasks(20, split="train", seed=3)]
    assert first == [t.row() for t in generate_tasks(20, split="train", seed=3)]
    assert first != [t.row() for t in generate_tasks(20, split="train", seed=4)]


def test_splits_never_share_a_task_across_seeds():
    train = {t.canonical() for seed in range(3) for t in generate_tasks(150, split="train", seed=seed)}
    test = {t.canonical() for seed in range(3) for t in generate_tasks(60, split="test", seed=seed)}
    assert train and test and not train & test


def test_output_order_and_wire_names_do_not_change_the_task():
    task = next(
        t
        for t in generate_tasks(50, split="train", seed=0)
        if len({o.kind for o in t.outputs if o.kind in ("comb", "bits")}) == 2
    )
    combinational = [o for o in task.outputs if o.kind in ("comb", "bits")]
    rest = [o for o in task.outputs if o.kind not in ("comb", "bits")]
    swapped = SyntheticTask(task.wires, tuple(reversed(combinational)) + tuple(rest), task.reset, task.enable)
    assert swapped.reference != task.reference
    assert swapped.canonical() == task.canonical() and swapped.split == task.split
    assert swapped.task_id == task.task_id


def test_tasks_are_distinct_and_cover_the_family():
    tasks = generate_tasks(300, split="train", seed=0)
    assert len({t.task_id for t in tasks}) == 300
    assert {len(t.outputs) for t in tasks} == {3, 4, 5, 6}
    assert {o.kind for t in tasks for o in t.outputs} == {"comb", "bits", "case", "load", "acc"}
    assert any(o.expression.then for t in tasks for o in t.outputs)  # two-operator expressions
    resets = {(t.reset.active_low, t.reset.asynchronous) for t in tasks if t.reset}
    assert resets == {(False, False), (False, True), (True, False), (True, True)}
    assert any(t.reset is None for t in tasks) and {t.enable for t in tasks if t.reset} == {False, True}
    assert {len(t.wires) for t in tasks} == {1, 2}
    for task in tasks:  # every wire is shared by at least two outputs
        for name in task.wire_names:
            assert (
                sum(
                    re.search(rf"\b{name}\b", line) is not None
                    for line in task.prompt.splitlines()
                    if line.startswith("- y")
                )
                >= 2
            ), task.prompt


def test_one_output_is_a_minority_of_the_completion():
    """The premise the mask needs: an output's slice is a small part of the completion's tokens. Measured with
    the project's slicer on the references, in tokens of a tokenizer trained on the family."""
    corpus = generate_tasks(2000, split="train", seed=1)
    tokenizer = train_tokenizer([t.prompt + t.completion for t in corpus], vocab_size=600)
    shares: dict[str, list[float]] = {"spans": [], "core_spans": []}
    for task in generate_tasks(200, split="train", seed=0):
        offset = task.completion.index(task.reference)
        tokens = tokenizer(task.completion, return_offsets_mapping=True, add_special_tokens=False)
        slices = slice_signals(task.reference)
        for name in task.output_names:
            for field, values in shares.items():
                spans = [(a + offset, b + offset) for a, b in getattr(slices[name], field)]
                inside = sum(
                    any(a < end and start < b for a, b in spans) for start, end in tokens.offset_mapping
                )
                values.append(inside / len(tokens.offset_mapping))
    full, core = statistics.fmean(shares["spans"]), statistics.fmean(shares["core_spans"])
    print(
        f"\none output's slice, share of completion tokens: {full:.1%} with the interface, {core:.1%} without"
    )
    assert full <= 0.55 and core <= 0.25


def test_prompt_states_every_wire_and_output_on_its_own_line():
    for task in generate_tasks(50, split="test", seed=1):
        lines = task.prompt.splitlines()
        for name in task.wire_names:
            assert sum(line.startswith(f"- {name} = ") for line in lines) == 1
        for name, out in task.named_outputs:
            own = [line for line in lines if line.startswith(f"- {name} ")]
            assert len(own) == 1
            # registers are stated as such, with the operator that their statement writes
            assert own[0].startswith(f"- {name} <= " if out.registered else f"- {name} = ")
            assert ("a register" in own[0]) == out.registered
            assert f"({'1 bit' if out.width == 1 else f'{out.width} bits'}" in own[0]
        if task.reset:
            level = "active-low" if task.reset.active_low else "active-high"
            timing = "asynchronous" if task.reset.asynchronous else "synchronous"
            assert f"{task.reset.name} is an {level} {timing} reset" in task.prompt
        assert ("only while en is 1" in task.prompt) == task.enable


def test_rows_and_sft_corpus():
    tasks = generate_tasks(5, split="train", seed=0)
    rows = tasks_dataset(tasks)
    assert rows.column_names == ["task_id", "prompt", "reference", "testbench", "top"]
    assert rows[0]["testbench"] is None and rows[0]["top"] == TOP
    sft = sft_dataset(tasks)
    completion = sft[0]["completion"]
    assert completion.startswith("```verilog\nmodule top_module (") and completion.endswith("endmodule\n```")
    assert completion[len("```verilog\n") : -len("```")] == tasks[0].reference


def test_argument_errors():
    with pytest.raises(ValueError, match="split"):
        generate_tasks(1, split="dev", seed=0)
    with pytest.raises(ValueError, match="min_outputs"):
        generate_tasks(1, split="train", min_outputs=4, max_outputs=3)


# ---- the reference implements the prompt: simulate it and compare with a Python model of the spec ----


def _python_model(task: SyntheticTask, vectors: list[dict[str, int]]) -> list[dict[str, int]]:
    """Output values after each rising clock edge (inputs applied before the edge), from the spec alone."""
    mask = (1 << 4) - 1
    binary = {
        "and": lambda x, y: x & y,
        "or": lambda x, y: x | y,
        "xor": lambda x, y: x ^ y,
        "nand": lambda x, y: ~(x & y) & mask,
        "add": lambda x, y: (x + y) & mask,
        "sub": lambda x, y: (x - y) & mask,
        "eq": lambda x, y: int(x == y),
        "lt": lambda x, y: int(x < y),
    }

    def value(expr, v):
        if expr.op == "not":
            result = ~v[expr.operands[0]] & mask
        elif expr.op == "id":
            result = v[expr.operands[0]]
        else:
            result = binary[expr.op](*(v[x] for x in expr.operands))
        if expr.then:
            result = binary[expr.then[0]](result, v[expr.then[1]])
        return result

    def output(name, out, v, state):
        if out.registered:
            return state[name]
        if out.kind == "bits":
            high, low = out.bits
            return (v[out.expression.operands[0]] >> low) & ((1 << (high - low + 1)) - 1)
        if out.kind == "case":
            return v[out.expression.operands[min(v["sel"], 3)]]
        return value(out.expression, v)

    state = {name: 0 for name in task.output_names}  # every vector sequence starts with a reset
    results = []
    for v in vectors:
        v = dict(v)
        for name, wire in zip(task.wire_names, task.wires, strict=True):
            v[name] = value(wire, v)
        in_reset = task.reset is not None and v["rst"] == (0 if task.reset.active_low else 1)
        loads = not task.enable or v["en"] == 1
        after = dict(state)  # non-blocking: every register's next value from the current state
        for name, out in task.named_outputs:
            if not out.registered:
                continue
            if in_reset:
                after[name] = 0
            elif loads and out.kind == "load":
                after[name] = value(out.expression, v)
            elif loads:
                x = v[out.expression.operands[0]]
                after[name] = (state[name] + x) & mask if out.accumulate == "add" else state[name] ^ x
        state = after
        results.append({name: output(name, out, v, state) for name, out in task.named_outputs})
    return results


def _testbench(task: SyntheticTask, vectors: list[dict[str, int]]) -> str:
    rst = task.reset.name if task.reset else None
    controls = ([rst] if rst else []) + (["en"] if task.enable else [])
    ports = ["a", "b", "c"] + (["clk", *controls] if rst else []) + (["sel"] if task.has_case else [])
    lines = ["module tb;", "  reg clk = 0;", *(f"  reg [3:0] {x};" for x in "abc"), "  reg [1:0] sel;"]
    lines += [f"  reg {x};" for x in controls]
    lines += [f"  wire [{o.width - 1}:0] {n};" for n, o in task.named_outputs]
    lines.append(f"  {TOP} dut (" + ", ".join(f".{p}({p})" for p in ports + task.output_names) + ");")
    lines.append("  initial begin")
    for v in vectors:
        lines += [f"    {x} = {v[x]};" for x in ("a", "b", "c", "sel")]
        lines += [f"    {x} = {v['rst' if x == rst else x]};" for x in controls]
        lines += [
            "    #1 clk = 1;",
            "    #1 clk = 0;",
            '    $display("'
            + " ".join("%0d" for _ in task.output_names)
            + '", '
            + ", ".join(task.output_names)
            + ");",
        ]
    lines += ["    $finish;", "  end", "endmodule"]
    return "\n".join(lines) + "\n"


@requires_iverilog
def test_references_compile_and_implement_their_prompts(tmp_path):
    rng = random.Random(0)
    tasks = generate_tasks(40, split="train", seed=0) + generate_tasks(20, split="test", seed=0)
    for i, task in enumerate(tasks):
        active = 0 if task.reset and task.reset.active_low else 1
        vectors = [
            {
                "a": rng.randrange(16),
                "b": rng.randrange(16),
                "c": rng.randrange(16),
                "sel": rng.randrange(4),
                "en": rng.randrange(2),
                "rst": active if step == 0 else rng.choice([active, 1 - active, 1 - active, 1 - active]),
            }
            for step in range(12)
        ]
        design, bench, binary = tmp_path / f"d{i}.v", tmp_path / f"tb{i}.v", tmp_path / f"sim{i}"
        design.write_text(task.reference)
        bench.write_text(_testbench(task, vectors))
        compiled = subprocess.run(
            ["iverilog", "-g2012", "-Wall", "-o", str(binary), str(design), str(bench)],
            capture_output=True,
            text=True,
        )
        assert compiled.returncode == 0, compiled.stderr
        assert not re.search(r"warning|error", compiled.stderr, re.I), compiled.stderr
        run = subprocess.run(["vvp", "-n", str(binary)], capture_output=True, text=True, timeout=30)
        printed = [list(map(int, line.split())) for line in run.stdout.splitlines() if line[:1].isdigit()]
        expected = [[r[n] for n in task.output_names] for r in _python_model(task, vectors)]
        assert printed == expected, f"{task.task_id}\n{task.prompt}\n{task.reference}"
