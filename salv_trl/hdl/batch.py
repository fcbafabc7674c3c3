"""Batched copies of a given testbench: many candidates of one problem in one compile and one simulation, each
with its own renamed copy of the testbench (and reference), so that each sees exactly the run it would have
alone.

In a copy every module is suffixed `__s<slot>` (the candidate's top name included, as the testbench
instantiates it), the testbench's display strings are tagged with the copy's own tag and its dump calls
dropped (copies would share one file). Random streams are kept per copy: every `$random` / `$urandom` call
draws from the copy's own seed variable, which starts from the value Icarus starts its global seeds from (0).
`$finish` becomes a per-copy request: the simulation ends when every copy has asked, and each copy prints when
it asked, so that a copy that ran past its own end is not believed ([`finish_time`]).

Copies do not share a reference: Icarus orders the processes woken in one time step by all the processes
present, so removing a copy's reference can change how a racy candidate resolves its race.

```python
>>> testbench = "module tb; top_module dut(); initial begin $display(\\"done\\"); $finish; end endmodule"
>>> template = copy_template(testbench, "", "top_module")
>>> source = copy_source(template, "module top_module(); endmodule", "top_module", 0, "ab12", code_first=True)
>>> "module top_module__s0" in source and "top_module__s0 dut" in source
True
>>> "salv_seeds__s0.request()" in source  # the testbench's `$finish`
True
>>> files, roots = batch_files({0: source})
>>> sorted(files), roots
(['s0.sv', 'salv_batch.sv'], ['-s', 'salv_batch', '-s', 'tb__s0', '-s', 'salv_seeds__s0'])

```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from .extract import declared_modules
from .parse import rename_modules
from .source import VerilogInputError
from .testbench import tag_displays

__all__ = ["batch_files", "copies_named", "copy_source", "copy_tag", "copy_template", "finish_time"]

_SEEDED = re.compile(r"\$(random|urandom)\b(?!\s*\()")
_DUMP = re.compile(r"\$dump\w*\s*(\([^;]*\))?\s*;")
_FINISH = re.compile(r"\$finish\b\s*(\(\s*\d*\s*\))?")
_ASKED = re.compile(r"^SALV_FINISH (\d+)$", re.MULTILINE)
# What a candidate must not contain to be batched: directives or macros could leak between copies; the batch's
# own names (`tb__s0`, `salv_batch`) would let it reach into other copies, where its own run has no such scope
# and fails to compile; its own `$random` calls draw from the global stream that all copies share.
_UNBATCHABLE = re.compile(r"`|__s\d|salv_|\$u?random")
_NOISY = re.compile(r"s(\d+)\.sv:")

_SLOT, _NONCE = "SALVSLOT", "SALVNONCE"  # placeholders filled in per copy
_COPY_TAG = f"{_NONCE}S{_SLOT}S"  # a copy's tag: the batch's secret, its slot (no tag is a part of another)


def copy_tag(nonce: str, slot: int) -> str:
    """The tag around the lines copy `slot` of the batch `nonce` prints."""
    return _COPY_TAG.replace(_NONCE, nonce).replace(_SLOT, str(slot))


@lru_cache(maxsize=1024)
def copy_template(testbench: str, reference: str, top: str) -> str | None:
    """The harness text of one copy (testbench, then `reference` when given) with slot and nonce placeholders,
    or None when the testbench cannot be batched exactly (`$urandom_range` has no per-copy seed form)."""
    text = testbench + reference
    if "$urandom_range" in text or _SLOT in text or _NONCE in text:
        return None
    names = declared_modules(testbench) | declared_modules(reference) | {top}
    mapping = {name: f"{name}__s{_SLOT}" for name in names}
    try:
        tb = tag_displays(rename_modules(_DUMP.sub("", testbench), mapping), _COPY_TAG)
        ref = rename_modules(reference, mapping) if reference.strip() else ""
    except VerilogInputError:
        return None
    seeds = f"salv_seeds__s{_SLOT}"
    tb = _FINISH.sub(f"{seeds}.request()", tb)
    seeds_module = f"""module {seeds};
  integer r = 0;
  integer u = 0;
  time asked_at = 0;
  reg asked = 0;
  task request;
    if (!asked) begin
      asked = 1;
      asked_at = $time;
      salv_batch.requests = salv_batch.requests + 1;
      if (salv_batch.requests == salv_batch.copies) $finish;
    end
  endtask
  final $display("{_COPY_TAG}SALV_FINISH %0d{_COPY_TAG}", asked_at);
endmodule
"""
    seeded = _SEEDED.sub(lambda m: f"${m.group(1)}({seeds}.{m.group(1)[0]})", tb + "\n" + ref)
    return seeded + "\n" + seeds_module


def copy_source(template: str, code: str, top: str, slot: int, nonce: str, *, code_first: bool) -> str | None:
    """The file of copy `slot`: the candidate `code` with its modules suffixed, and the `template`'s harness
    (candidate first when `code_first`, as VerilogEval v2 compiles it; else after the harness, as v1 writes
    it). None when the candidate cannot be batched exactly; it then needs its own run."""
    if _UNBATCHABLE.search(code):
        return None
    own = {name: f"{name}__s{slot}" for name in declared_modules(code) | {top}}
    try:
        renamed = rename_modules(code, own)
    except VerilogInputError:
        return None
    harness = template.replace(_NONCE, nonce).replace(_SLOT, str(slot))
    # `resetall gives every copy the default directives (timescale, nettype) its own run starts from.
    return "`resetall\n" + (renamed + "\n" + harness if code_first else harness + "\n" + renamed)


def batch_files(copies: Mapping[int, str]) -> tuple[dict[str, str], list[str]]:
    """The batch's source files (`s<slot>.sv` per copy and the `salv_batch` module that counts the finish
    requests) and the compiler's `-s` arguments naming its roots."""
    files = {f"s{slot}.sv": source for slot, source in copies.items()}
    files["salv_batch.sv"] = (
        f"module salv_batch;\n  integer requests = 0;\n  integer copies = {len(copies)};\nendmodule\n"
    )
    roots = ["-s", "salv_batch"]
    roots += [arg for slot in copies for arg in ("-s", f"tb__s{slot}", "-s", f"salv_seeds__s{slot}")]
    return files, roots


def copies_named(messages: Iterable[str]) -> set[int]:
    """The slots whose file the compiler's `messages` are about."""
    return {int(m.group(1)) for line in messages if (m := _NOISY.match(line))}


def finish_time(lines: str) -> tuple[int | None, str]:
    """(the simulated time at which a copy asked to finish, or None; its lines without that report)."""
    asked = _ASKED.search(lines)
    return (int(asked.group(1)) if asked else None), _ASKED.sub("", lines).strip("\n")
