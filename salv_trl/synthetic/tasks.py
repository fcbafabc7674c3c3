"""A seeded synthetic family of small multi-output Verilog tasks.

Every task is a module `top_module` with three 4-bit data inputs `a`, `b`, `c` and 2-4 outputs. Each output is
either *combinational* (a bitwise, arithmetic or comparison expression of two inputs, or the NOT of one) or
*registered* (a register clocked on the rising edge of `clk` that loads such an expression, or accumulates an
input into itself). Tasks with registered outputs have one reset input whose polarity and timing are stated in
the prompt: `rst` (active-high) or `rst_n` (active-low), synchronous or asynchronous; registers reset to 0.

The prompt describes every output in its own line, in words for the operators and in the order the code
writes it (`- y1 = a minus c (4 bits).`, `- y2 <= y2 XOR b on every rising edge of clk (4 bits, a
register).`), and the reference module implements every output in its own statement (an `assign`, or an
`always` block per register), always in the same regular layout. A model that misreads one line of the prompt
therefore usually gets exactly one output wrong: outputs fail mostly independently, which is the premise of
signal-aware preference learning. The wording follows the code: a line opens with the output's name and `=` /
`<=` as its statement does, and translating `AND`, `plus`, `equals` into operators is left to the model.

Train and test splits never share a task, by construction: a task's split is a function of the hash of its
canonical form (its reset style and the sorted multiset of its output behaviours, names excluded), so the same
task lands in the same split whatever the seed, and two tasks that differ only in the order of their outputs
are the same task.

Example:

```python
>>> from salv_trl.synthetic import generate_tasks
>>> task = generate_tasks(1, split="test", seed=0)[0]
>>> print(task.prompt)  # doctest: +SKIP
```
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "test"]

DATA_INPUTS = ("a", "b", "c")
WIDTH = 4
TOP = "top_module"
# Percentage of the canonical-hash space that belongs to the test split.
TEST_PERCENT = 20

# op -> (Verilog template, prompt template, commutative, result is 1 bit)
_BINARY_OPS: dict[str, tuple[str, str, bool, bool]] = {
    "and": ("{x} & {y}", "{x} AND {y}", True, False),
    "or": ("{x} | {y}", "{x} OR {y}", True, False),
    "xor": ("{x} ^ {y}", "{x} XOR {y}", True, False),
    "nand": ("~({x} & {y})", "NOT ({x} AND {y})", True, False),
    "add": ("{x} + {y}", "{x} plus {y}", True, False),
    "sub": ("{x} - {y}", "{x} minus {y}", False, False),
    "eq": ("{x} == {y}", "{x} equals {y}", True, True),
    "lt": ("{x} < {y}", "{x} is less than {y}", False, True),
}
_UNARY_OPS: dict[str, tuple[str, str]] = {
    "not": ("~{x}", "NOT {x}"),
    "id": ("{x}", "{x}"),
}
# Accumulating registers: next value = the register combined with one input.
_ACCUMULATE_OPS: dict[str, tuple[str, str]] = {
    "add": ("{q} + {x}", "{q} plus {x}"),
    "xor": ("{q} ^ {x}", "{q} XOR {x}"),
}


@dataclass(frozen=True)
class Expression:
    """A combinational expression of the data inputs: `op` applied to `operands` (one or two input names)."""

    op: str
    operands: tuple[str, ...]

    @property
    def one_bit(self) -> bool:
        return self.op in _BINARY_OPS and _BINARY_OPS[self.op][3]

    def verilog(self) -> str:
        if self.op in _UNARY_OPS:
            return _UNARY_OPS[self.op][0].format(x=self.operands[0])
        x, y = self.operands
        return _BINARY_OPS[self.op][0].format(x=x, y=y)

    def describe(self) -> str:
        if self.op in _UNARY_OPS:
            return _UNARY_OPS[self.op][1].format(x=self.operands[0])
        x, y = self.operands
        return _BINARY_OPS[self.op][1].format(x=x, y=y)


@dataclass(frozen=True)
class OutputSpec:
    """One output's behaviour.

    `kind` is `"comb"` (continuous assignment of `expression`), `"load"` (a register loading `expression`) or
    `"acc"` (a register that combines itself with input `expression.operands[0]` by `accumulate`,
    `expression.op` being `"id"`).
    """

    kind: Literal["comb", "load", "acc"]
    expression: Expression
    accumulate: str | None = None

    @property
    def registered(self) -> bool:
        return self.kind != "comb"

    @property
    def width(self) -> int:
        return 1 if self.expression.one_bit else WIDTH

    def canonical(self) -> str:
        operands = ",".join(self.expression.operands)
        return f"{self.kind}:{self.accumulate or ''}:{self.expression.op}:{operands}"


@dataclass(frozen=True)
class ResetSpec:
    """The reset of a task's registers: polarity (`active_low`) and timing (`asynchronous`)."""

    active_low: bool
    asynchronous: bool

    @property
    def name(self) -> str:
        return "rst_n" if self.active_low else "rst"

    def describe(self) -> str:
        level = "active-low" if self.active_low else "active-high"
        timing = "asynchronous" if self.asynchronous else "synchronous"
        return f"Reset: {self.name} is an {level} {timing} reset; every register resets to 0."


@dataclass(frozen=True)
class SyntheticTask:
    """One synthetic task: its outputs (`y0`, `y1`, ... in order) and its reset (None without registers)."""

    outputs: tuple[OutputSpec, ...]
    reset: ResetSpec | None

    @property
    def output_names(self) -> list[str]:
        return [f"y{i}" for i in range(len(self.outputs))]

    @property
    def named_outputs(self) -> list[tuple[str, OutputSpec]]:
        return list(zip(self.output_names, self.outputs, strict=True))

    def canonical(self) -> str:
        """Reset style + sorted output behaviours: equal for tasks that differ only in output order."""
        reset = "none" if self.reset is None else f"{self.reset.name}:{int(self.reset.asynchronous)}"
        return reset + "|" + "|".join(sorted(o.canonical() for o in self.outputs))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    @property
    def split(self) -> Split:
        """The split this task belongs to, a pure function of its canonical form."""
        return "test" if int(self.digest[:8], 16) % 100 < TEST_PERCENT else "train"

    @property
    def task_id(self) -> str:
        return f"syn_{self.digest[:12]}"

    @property
    def prompt(self) -> str:
        lines = [f"Write a Verilog module named {TOP}."]
        inputs = [f"clk, {self.reset.name}"] if self.reset else []
        inputs += [f"{x} ({WIDTH} bits)" for x in DATA_INPUTS]
        lines.append("Inputs: " + ", ".join(inputs) + ".")
        if self.reset:
            lines.append(self.reset.describe())
        lines.append("Outputs:")
        for name, out in self.named_outputs:
            bits = "1 bit" if out.width == 1 else f"{WIDTH} bits"
            if out.kind == "acc":
                value = _ACCUMULATE_OPS[out.accumulate][1].format(q=name, x=out.expression.operands[0])
            else:
                value = out.expression.describe()
            if out.registered:
                lines.append(f"- {name} <= {value} on every rising edge of clk ({bits}, a register).")
            else:
                lines.append(f"- {name} = {value} ({bits}).")
        # The closing newline keeps the prompt's last token from merging with the completion's opening fence.
        return "\n".join(lines) + "\n"

    @property
    def reference(self) -> str:
        ports = ["input clk", f"input {self.reset.name}"] if self.reset else []
        ports += [f"input [{WIDTH - 1}:0] {x}" for x in DATA_INPUTS]
        body = []
        for name, out in self.named_outputs:
            width = "" if out.width == 1 else f" [{WIDTH - 1}:0]"
            ports.append(f"output{' reg' if out.registered else ''}{width} {name}")
            if not out.registered:
                body.append(f"    assign {name} = {out.expression.verilog()};")
                continue
            reset = self.reset
            edge = ""
            if reset.asynchronous:
                edge = f" or {'negedge' if reset.active_low else 'posedge'} {reset.name}"
            condition = f"!{reset.name}" if reset.active_low else reset.name
            if out.kind == "load":
                update = out.expression.verilog()
            else:
                update = _ACCUMULATE_OPS[out.accumulate][0].format(q=name, x=out.expression.operands[0])
            body += [
                f"    always @(posedge clk{edge}) begin",
                f"        if ({condition}) {name} <= {WIDTH}'d0;",
                f"        else {name} <= {update};",
                "    end",
            ]
        header = f"module {TOP} (\n" + ",\n".join(f"    {p}" for p in ports) + "\n);"
        return "\n".join([header, *body, "endmodule"]) + "\n"

    @property
    def completion(self) -> str:
        """The SFT target: the reference in one fenced verilog block."""
        return f"```verilog\n{self.reference}```"

    def row(self) -> dict[str, str | None]:
        """The task as a row of the tasks schema."""
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "reference": self.reference,
            "testbench": None,
            "top": TOP,
        }


def _random_expression(rng: random.Random, allow_one_bit: bool) -> Expression:
    ops = [op for op, spec in _BINARY_OPS.items() if allow_one_bit or not spec[3]] + list(_UNARY_OPS)
    op = rng.choice(ops)
    if op in _UNARY_OPS:
        return Expression(op, (rng.choice(DATA_INPUTS),))
    x, y = rng.sample(DATA_INPUTS, 2)
    if _BINARY_OPS[op][2]:  # commutative: one canonical operand order, so `a & b` and `b & a` are one task
        x, y = sorted((x, y))
    return Expression(op, (x, y))


def random_task(
    rng: random.Random, *, min_outputs: int = 2, max_outputs: int = 4, registered_share: float = 0.4
) -> SyntheticTask:
    """Draw one task: `min_outputs`..`max_outputs` distinct outputs, a share of them registers."""
    count = rng.randint(min_outputs, max_outputs)
    outputs: list[OutputSpec] = []
    while len(outputs) < count:
        if rng.random() < registered_share:
            if rng.random() < 0.7:
                out = OutputSpec("load", _random_expression(rng, allow_one_bit=False))
            else:
                operand = Expression("id", (rng.choice(DATA_INPUTS),))
                out = OutputSpec("acc", operand, rng.choice(list(_ACCUMULATE_OPS)))
        else:
            out = OutputSpec("comb", _random_expression(rng, allow_one_bit=True))
        if out not in outputs:  # two identical outputs would make a pair's contrast ambiguous
            outputs.append(out)
    reset = ResetSpec(rng.random() < 0.5, rng.random() < 0.5) if any(o.registered for o in outputs) else None
    return SyntheticTask(tuple(outputs), reset)


def generate_tasks(
    n: int,
    *,
    split: Split,
    seed: int = 0,
    min_outputs: int = 2,
    max_outputs: int = 4,
    registered_share: float = 0.4,
) -> list[SyntheticTask]:
    """Return `n` distinct tasks of `split`, deterministic in `seed`.

    Args:
        n: number of tasks.
        split: `"train"` or `"test"`; tasks whose canonical hash falls in the other split are skipped, so the
            two splits are disjoint for every pair of seeds.
        seed: the random seed; the same seed and arguments always give the same tasks in the same order.
        min_outputs, max_outputs: bounds on the number of outputs per task.
        registered_share: probability that an output is a register.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 1 <= min_outputs <= max_outputs:
        raise ValueError(f"need 1 <= min_outputs <= max_outputs, got {min_outputs}, {max_outputs}")
    # The split is mixed into the stream so that train and test draws of one seed are unrelated.
    rng = random.Random(f"salv-synthetic:{seed}:{split}")
    tasks: dict[str, SyntheticTask] = {}
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 1000 * (n + 10):
            raise ValueError(f"could not draw {n} distinct {split} tasks with these settings")
        task = random_task(
            rng, min_outputs=min_outputs, max_outputs=max_outputs, registered_share=registered_share
        )
        if task.split == split and task.task_id not in tasks:
            tasks[task.task_id] = task
    return list(tasks.values())


def tasks_dataset(tasks: list[SyntheticTask]):
    """A `datasets.Dataset` of the tasks schema (`testbench` is None: the reference is the oracle)."""
    from datasets import Dataset, Features, Value

    features = Features({k: Value("string") for k in ("task_id", "prompt", "reference", "testbench", "top")})
    return Dataset.from_list([t.row() for t in tasks], features=features)


def sft_dataset(tasks: list[SyntheticTask]):
    """A prompt-completion `datasets.Dataset` for `trl.SFTTrainer`: the completion is the fenced reference."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": t.prompt, "completion": t.completion} for t in tasks])
