"""A seeded synthetic family of multi-output Verilog tasks in the regime of QiMeng-SALV's premise.

Every task is a module `top_module` with 4-bit data inputs `a`, `b`, `c` and 3-6 outputs `y0`, `y1`, ... built
like the small RTL blocks of the benchmarks, where one output's code is a minority of the module:

- **shared wires**: one or two internal wires `t0`, `t1` (a 4-bit expression of two inputs), each read by at
  least two outputs, so that one wire sits in several outputs' slices;
- **combinational outputs**: an `assign` of a bitwise, arithmetic or comparison expression of two operands
  (inputs or wires), or the NOT of one;
- **bit-select outputs**: one bit or a 2-bit range of an operand (`assign y1 = t0[3:2];`);
- **a case output** (at most one per task, with a 2-bit input `sel`): an `always @(*)` block whose `case`
  picks one of four operands;
- **registers**: loading an expression, or accumulating an input into themselves (`y4 <= y4 + c`), all in
  one multi-statement `always` block with the task's reset (`rst` active-high or `rst_n` active-low,
  synchronous or asynchronous; every register resets to 0) and, in some tasks, an enable `en` under which
  every register loads.

The prompt states each wire and each output on its own line, in words for the operators and in the order the
code writes them (`- y0 = t0 XOR c (4 bits).`, `- y3 <= y3 plus b on every rising edge of clk (4 bits, a
register).`), and the reference is always laid out the same way: header, wires, `assign`s, the case block,
the register block. What makes an output hard for a small model is the mapping from words to operators and
operands (two of three inputs, or a wire), the bit positions of a select, the four arms of a case in order,
and for registers the reset and enable conditions of the shared block and the `<=` of an accumulator; a model
that misreads one line usually gets exactly that output wrong and the others right, which is the premise
of signal-aware preference learning. `tests/test_synthetic.py` measures how much of a completion one
output's slice is, in tokens: about half with the interface (the header every slice keeps is a large part of
a module this small), about a sixth without it (`include_interface=False`, the core spans).

Train and test splits never share a task, by construction: a task's split is a function of the hash of its
canonical form (its reset and enable style and the sorted multiset of its output behaviours, with every wire
replaced by its expression, names excluded), so the same task lands in the same split whatever the seed, and
two tasks that differ only in the order of their outputs or the names of their wires are the same task.

Example:

```python
>>> from salv_trl.synthetic import generate_tasks
>>> task = generate_tasks(1, split="test", seed=0)[0]
>>> task.split, task.prompt.splitlines()[0]
('test', 'Write a Verilog module named top_module.')

```
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "test"]
Kind = Literal["comb", "bits", "case", "load", "acc"]

DATA_INPUTS = ("a", "b", "c")
WIDTH = 4
TOP = "top_module"
# Percentage of the canonical-hash space that belongs to the test split.
TEST_PERCENT = 20
# The code order of output kinds: `assign`s, then the case block, then the register block.
_CODE_ORDER: dict[str, int] = {"comb": 0, "bits": 0, "case": 1, "load": 2, "acc": 2}

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
# Bit selects: (high, low) bit positions, each a 1-bit or 2-bit output.
_BIT_SELECTS = ((3, 3), (0, 0), (3, 2), (2, 1), (1, 0))


@dataclass(frozen=True)
class Expression:
    """`op` applied to `operands` (one or two names: data inputs or wires), then, when `then` is set to
    `(op2, z)`, combined with operand `z` by the 4-bit binary `op2`: `(x op y) op2 z`."""

    op: str
    operands: tuple[str, ...]
    then: tuple[str, str] | None = None

    @property
    def one_bit(self) -> bool:
        return self.then is None and self.op in _BINARY_OPS and _BINARY_OPS[self.op][3]

    def _render(self, templates: int, unary: dict, binary: dict, group: str) -> str:
        if self.op in unary:
            text = unary[self.op][templates].format(x=self.operands[0])
        else:
            x, y = self.operands
            text = binary[self.op][templates].format(x=x, y=y)
        if self.then is None:
            return text
        op2, z = self.then
        return binary[op2][templates].format(x=group.format(text), y=z)

    def verilog(self) -> str:
        return self._render(0, _UNARY_OPS, _BINARY_OPS, "({})")

    def describe(self) -> str:
        return self._render(1, _UNARY_OPS, _BINARY_OPS, "({})")

    def canonical(self, wires: dict[str, Expression]) -> str:
        """Name-free form: every wire operand replaced by its own expression."""
        names = [*self.operands, *(self.then[1:] if self.then else ())]
        operands = [f"({wires[x].canonical({})})" if x in wires else x for x in names]
        return f"{self.op}{'/' + self.then[0] if self.then else ''}({','.join(operands)})"


@dataclass(frozen=True)
class OutputSpec:
    """One output's behaviour.

    - `comb`: `assign` of `expression`;
    - `bits`: `assign` of bits `bits = (high, low)` of operand `expression.operands[0]` (`expression.op` is
      `"id"`);
    - `case`: by `sel`, one of the four operands of `expression` (`expression.op` is `"case"`; the last one
      is the `default`);
    - `load`: a register loading `expression`;
    - `acc`: a register that combines itself with input `expression.operands[0]` by `accumulate`.
    """

    kind: Kind
    expression: Expression
    accumulate: str | None = None
    bits: tuple[int, int] | None = None

    @property
    def registered(self) -> bool:
        return self.kind in ("load", "acc")

    @property
    def width(self) -> int:
        if self.kind == "bits":
            high, low = self.bits
            return high - low + 1
        return 1 if self.expression.one_bit else WIDTH

    def canonical(self, wires: dict[str, Expression]) -> str:
        extra = self.accumulate or (f"{self.bits[0]}:{self.bits[1]}" if self.bits else "")
        return f"{self.kind}:{extra}:{self.expression.canonical(wires)}"

    def value(self, name: str) -> str:
        """The Verilog expression this output is assigned (`case` outputs have four, see the reference)."""
        if self.kind == "bits":
            high, low = self.bits
            return f"{self.expression.operands[0]}[{high if high == low else f'{high}:{low}'}]"
        if self.kind == "acc":
            return _ACCUMULATE_OPS[self.accumulate][0].format(q=name, x=self.expression.operands[0])
        return self.expression.verilog()

    def describe(self, name: str) -> str:
        """The prompt's words for this output's value."""
        if self.kind == "bits":
            high, low = self.bits
            where = f"bit {high}" if high == low else f"bits {high} to {low}"
            return f"{where} of {self.expression.operands[0]}"
        if self.kind == "case":
            arms = [f"{i} gives {x}" for i, x in enumerate(self.expression.operands[:3])]
            return f"by sel: {', '.join(arms)}, otherwise {self.expression.operands[3]}"
        if self.kind == "acc":
            return _ACCUMULATE_OPS[self.accumulate][1].format(q=name, x=self.expression.operands[0])
        return self.expression.describe()


@dataclass(frozen=True)
class ResetSpec:
    """The reset of a task's registers: polarity (`active_low`) and timing (`asynchronous`)."""

    active_low: bool
    asynchronous: bool

    @property
    def name(self) -> str:
        return "rst_n" if self.active_low else "rst"

    @property
    def condition(self) -> str:
        return f"!{self.name}" if self.active_low else self.name

    def describe(self) -> str:
        level = "active-low" if self.active_low else "active-high"
        timing = "asynchronous" if self.asynchronous else "synchronous"
        return f"Reset: {self.name} is an {level} {timing} reset; every register resets to 0."


@dataclass(frozen=True)
class SyntheticTask:
    """One synthetic task.

    Attributes:
        wires: the internal wires `t0`, `t1`, ... (4-bit expressions of the data inputs), in order.
        outputs: the outputs `y0`, `y1`, ... in code order (see `_CODE_ORDER`).
        reset: the registers' reset (None without registers).
        enable: every register loads only while `en` is 1.
    """

    wires: tuple[Expression, ...]
    outputs: tuple[OutputSpec, ...]
    reset: ResetSpec | None
    enable: bool = False

    @property
    def wire_names(self) -> list[str]:
        return [f"t{i}" for i in range(len(self.wires))]

    @property
    def output_names(self) -> list[str]:
        return [f"y{i}" for i in range(len(self.outputs))]

    @property
    def named_outputs(self) -> list[tuple[str, OutputSpec]]:
        return list(zip(self.output_names, self.outputs, strict=True))

    @property
    def has_case(self) -> bool:
        return any(o.kind == "case" for o in self.outputs)

    def canonical(self) -> str:
        """Reset and enable style + sorted output behaviours with wires expanded: equal for tasks that differ
        only in the order of their outputs or the names of their wires."""
        wires = dict(zip(self.wire_names, self.wires, strict=True))
        reset = "none" if self.reset is None else f"{self.reset.name}:{int(self.reset.asynchronous)}"
        return f"{reset}:{int(self.enable)}|" + "|".join(sorted(o.canonical(wires) for o in self.outputs))

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

    def _control_inputs(self) -> list[str]:
        if self.reset is None:
            return []
        return ["clk", self.reset.name] + (["en"] if self.enable else [])

    @property
    def prompt(self) -> str:
        lines = [f"Write a Verilog module named {TOP}."]
        inputs = [", ".join(self._control_inputs()) + " (1 bit each)"] if self.reset else []
        inputs.append(f"{', '.join(DATA_INPUTS)} ({WIDTH} bits each)")
        inputs += ["sel (2 bits)"] if self.has_case else []
        lines.append("Inputs: " + "; ".join(inputs) + ".")
        if self.reset:
            lines.append(self.reset.describe())
        if self.enable:
            lines.append("Enable: every register loads only while en is 1.")
        if self.wires:
            lines.append("Wires:")
            lines += [
                f"- {n} = {w.describe()} ({WIDTH} bits)."
                for n, w in zip(self.wire_names, self.wires, strict=True)
            ]
        lines.append("Outputs:")
        for name, out in self.named_outputs:
            bits = "1 bit" if out.width == 1 else f"{out.width} bits"
            if out.registered:
                lines.append(
                    f"- {name} <= {out.describe(name)} on every rising edge of clk ({bits}, a register)."
                )
            else:
                lines.append(f"- {name} = {out.describe(name)} ({bits}).")
        # The closing newline keeps the prompt's last token from merging with the completion's opening fence.
        return "\n".join(lines) + "\n"

    @property
    def reference(self) -> str:
        ports = [f"input {', '.join(self._control_inputs())}"] if self.reset else []
        ports.append(f"input [{WIDTH - 1}:0] {', '.join(DATA_INPUTS)}")
        ports += ["input [1:0] sel"] if self.has_case else []
        # Consecutive outputs of one declaration type share a line (`output [3:0] y0, y1`): a compact header
        # keeps the interface, which every output's slice includes, a minority of the module.
        declarations: list[tuple[str, list[str]]] = []
        for name, out in self.named_outputs:
            kind = " reg" if out.registered or out.kind == "case" else ""
            declaration = f"output{kind}{'' if out.width == 1 else f' [{out.width - 1}:0]'}"
            if declarations and declarations[-1][0] == declaration:
                declarations[-1][1].append(name)
            else:
                declarations.append((declaration, [name]))
        ports += [f"{declaration} {', '.join(names)}" for declaration, names in declarations]
        body = [
            f"    wire [{WIDTH - 1}:0] {n} = {w.verilog()};"
            for n, w in zip(self.wire_names, self.wires, strict=True)
        ]
        registers = []
        for name, out in self.named_outputs:
            if out.kind in ("comb", "bits"):
                body.append(f"    assign {name} = {out.value(name)};")
            elif out.kind == "case":
                *arms, default = out.expression.operands
                body += ["    always @(*) begin", "        case (sel)"]
                body += [f"            2'd{i}: {name} = {x};" for i, x in enumerate(arms)]
                body += [f"            default: {name} = {default};", "        endcase", "    end"]
            else:
                registers.append((name, out))
        if registers:
            reset = self.reset
            edge = (
                f" or {'negedge' if reset.active_low else 'posedge'} {reset.name}"
                if reset.asynchronous
                else ""
            )
            load = " else if (en) begin" if self.enable else " else begin"
            body += [f"    always @(posedge clk{edge}) begin", f"        if ({reset.condition}) begin"]
            body += [f"            {name} <= {out.width}'d0;" for name, out in registers]
            body += ["        end" + load]
            body += [f"            {name} <= {out.value(name)};" for name, out in registers]
            body += ["        end", "    end"]
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


def _expression(
    rng: random.Random, operands: list[str], allow_one_bit: bool, compound: float = 0.0
) -> Expression:
    """A random expression; with probability `compound`, a two-operator one (`(x op y) op2 z`, 4 bits)."""
    ops = [op for op, spec in _BINARY_OPS.items() if allow_one_bit or not spec[3]] + list(_UNARY_OPS)
    op = rng.choice(ops)
    if op in _UNARY_OPS:
        first = (rng.choice(operands),)
    else:
        x, y = rng.sample(operands, 2)
        # commutative: one canonical operand order, so `a & b` and `b & a` are one task
        first = tuple(sorted((x, y))) if _BINARY_OPS[op][2] else (x, y)
    then = None
    if op != "id" and not _BINARY_OPS.get(op, (0, 0, 0, False))[3] and rng.random() < compound:
        then = (rng.choice([o for o, spec in _BINARY_OPS.items() if not spec[3]]), rng.choice(operands))
    return Expression(op, first, then)


def _output(rng: random.Random, operands: list[str], with_case: bool) -> OutputSpec:
    roll = rng.random()
    if with_case and roll < 0.15:
        return OutputSpec("case", Expression("case", tuple(rng.choice(operands) for _ in range(4))))
    if roll < 0.3:
        return OutputSpec("bits", Expression("id", (rng.choice(operands),)), bits=rng.choice(_BIT_SELECTS))
    if roll < 0.55:
        return OutputSpec("load", _expression(rng, operands, allow_one_bit=False, compound=0.5))
    if roll < 0.65:
        operand = Expression("id", (rng.choice(DATA_INPUTS),))
        return OutputSpec("acc", operand, rng.choice(list(_ACCUMULATE_OPS)))
    return OutputSpec("comb", _expression(rng, operands, allow_one_bit=True, compound=0.5))


def _reads(out: OutputSpec) -> set[str]:
    then = out.expression.then
    return {*out.expression.operands, *(then[1:] if then else ())}


def random_task(rng: random.Random, *, min_outputs: int = 3, max_outputs: int = 6) -> SyntheticTask:
    """Draw one task: one or two shared wires, `min_outputs`..`max_outputs` distinct outputs in code order."""
    while True:
        wires = tuple(
            _expression(rng, list(DATA_INPUTS), allow_one_bit=False) for _ in range(rng.choice((1, 1, 2)))
        )
        wires = tuple(w for w in wires if w.op != "id") or (Expression("add", ("a", "b")),)
        names = [f"t{i}" for i in range(len(wires))]
        operands = list(DATA_INPUTS) + names
        outputs: list[OutputSpec] = []
        count = rng.randint(min_outputs, max_outputs)
        while len(outputs) < count:
            out = _output(rng, operands, with_case=not any(o.kind == "case" for o in outputs))
            if out not in outputs:  # two identical outputs would make a pair's contrast ambiguous
                outputs.append(out)
        # Every wire is shared: read by at least two outputs.
        if all(sum(name in _reads(o) for o in outputs) >= 2 for name in names):
            break
    outputs.sort(key=lambda o: _CODE_ORDER[o.kind])  # stable: the draw order within a kind is kept
    registered = any(o.registered for o in outputs)
    reset = ResetSpec(rng.random() < 0.5, rng.random() < 0.5) if registered else None
    return SyntheticTask(wires, tuple(outputs), reset, enable=registered and rng.random() < 0.5)


def generate_tasks(
    n: int, *, split: Split, seed: int = 0, min_outputs: int = 3, max_outputs: int = 6
) -> list[SyntheticTask]:
    """Return `n` distinct tasks of `split`, deterministic in `seed`.

    Args:
        n: number of tasks.
        split: `"train"` or `"test"`; tasks whose canonical hash falls in the other split are skipped, so the
            two splits are disjoint for every pair of seeds.
        seed: the random seed; the same seed and arguments always give the same tasks in the same order.
        min_outputs, max_outputs: bounds on the number of outputs per task.
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
        task = random_task(rng, min_outputs=min_outputs, max_outputs=max_outputs)
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
