"""Code from model completions: the Verilog a response contains, with its character offset in the response.

The offset is what lets per-signal slices (character spans into the code) become spans into the completion
text, which is what the preference dataset and the trainer's mask are written in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ExtractedCode", "VERILOG_LANGUAGES", "declared_modules", "extract_code"]

#: Fence info strings (case-insensitive) that mark a block as Verilog.
VERILOG_LANGUAGES = frozenset({"verilog", "systemverilog", "sv", "v"})

# An opening or closing fence: up to three spaces of indentation, then three or more backticks or tildes
# (CommonMark). Models often indent fences inside lists, so deeper indentation is accepted as well.
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$", re.MULTILINE)
# A module declaration header: `module name` followed by a parameter list, a port list or a semicolon,
# so that prose such as "this module computes" is not taken for code.
_MODULE_START = re.compile(r"\b(?:macro)?module\s+[A-Za-z_][\w$]*\s*(?:#|\(|;)")
_MODULE_END = re.compile(r"\bendmodule\b")
# Whole lines that set up the module below them in a file (`timescale, `define, ...) or comment it.
_PREAMBLE_LINE = re.compile(
    r"[ \t]*(?:`(?:timescale|define|undef|include|default_nettype|resetall|ifdef|ifndef|elsif|else|endif)\b"
    r"[^\n]*|//[^\n]*)\n"
)
# A module name after `module`, wherever it stands (text the front end cannot parse still names its modules).
_MODULE_NAME = re.compile(r"\b(?:macro)?module\s+([A-Za-z_][\w$]*)")


@dataclass(frozen=True)
class ExtractedCode:
    """Verilog found in a completion.

    Args:
        code (`str`): The code, a verbatim substring of the completion.
        offset (`int`): Character offset of `code` in the completion: `completion[offset:offset + len(code)]
            == code`.
        source (`str`): Where it came from: `"verilog_fence"` (a fence tagged verilog, systemverilog, sv or
            v), `"fence"` (an untagged fence) or `"raw"` (module text outside any fence).
    """

    code: str
    offset: int
    source: str = "verilog_fence"

    @property
    def end(self) -> int:
        """Character offset just past the code in the completion."""
        return self.offset + len(self.code)

    def to_completion(self, spans: list[tuple[int, int]] | list[list[int]]) -> list[list[int]]:
        """Shift `[start, end)` spans into `code` to `[start, end)` spans into the completion."""
        return [[self.offset + start, self.offset + end] for start, end in spans]


def _fenced_blocks(text: str) -> list[tuple[str, int, int]]:
    """Closed fenced blocks as `(language, start, end)`, where `text[start:end]` is the block's content."""
    blocks = []
    opening = None  # (fence, language, content start)
    for match in _FENCE.finditer(text):
        fence, info = match["fence"], match["info"].strip()
        if opening is None:
            if fence[0] == "`" and "`" in info:  # inline code such as ```x``` is not a fence
                continue
            language = info.split()[0].lower() if info else ""
            opening = (fence, language, min(match.end() + 1, len(text)))
        elif fence[0] == opening[0][0] and len(fence) >= len(opening[0]) and not info:
            blocks.append((opening[1], opening[2], match.start()))
            opening = None
    return blocks


def _preamble(text: str, start: int) -> int:
    """Where the compiler directives and line comments right above the line of `start` begin (a file's
    `` `timescale `` or `` `define ``), blank lines between them included; `start` when there are none."""
    begin = text.rfind("\n", 0, start) + 1
    if text[begin:start].strip():  # the header does not start its line
        return start
    first = start
    while begin > 0:
        line = text.rfind("\n", 0, begin - 1) + 1
        if _PREAMBLE_LINE.fullmatch(text, line, begin):
            first = begin = line
        elif not text[line:begin].strip():
            begin = line
        else:
            break
    return first


def _raw_module(text: str) -> tuple[int, int] | None:
    """Span from the first module header (with the directives right above it) to the last `endmodule` after
    it, if any."""
    ends = list(_MODULE_END.finditer(text))
    start = _MODULE_START.search(text)
    if start is None or not ends or ends[-1].start() < start.start():
        return None
    return _preamble(text, start.start()), ends[-1].end()


def extract_code(completion: str) -> ExtractedCode | None:
    """The Verilog code of a model completion, or `None` when it has none.

    Looks, in order, for the last non-empty fenced block tagged `verilog` / `systemverilog` / `sv` / `v`; then
    the last non-empty untagged fence; then raw module text (from the first `module <name>` header, with the
    compiler directives and comments right above it, to the last `endmodule`). A Verilog file is its own code
    this way, and a model answer gives the code the dataset route, the file route of `salv-trl verify` and the
    metric all judge. Only closed fences count: an unterminated fence (a response cut at `max_new_tokens`)
    falls through to the raw-module rule, which still finds a complete module if the response holds one.

    Args:
        completion (`str`): The model's response text (without the prompt).

    Returns:
        [`ExtractedCode`] or `None`: the code and its offset in `completion`.

    Example:
    ```python
    >>> from salv_trl.hdl.extract import extract_code
    >>> text = "Here it is:\\n```verilog\\nmodule m(output y); assign y = 1; endmodule\\n```\\n"
    >>> found = extract_code(text)
    >>> text[found.offset:found.end] == found.code
    True

    ```
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    blocks = [b for b in _fenced_blocks(completion) if completion[b[1] : b[2]].strip()]
    for source, wanted in (("verilog_fence", VERILOG_LANGUAGES), ("fence", {""})):
        tagged = [b for b in blocks if b[0] in wanted]
        if tagged:
            _, start, end = tagged[-1]
            return ExtractedCode(completion[start:end], start, source)
    raw = _raw_module(completion)
    if raw is None:
        return None
    return ExtractedCode(completion[raw[0] : raw[1]], raw[0], "raw")


def declared_modules(text: str) -> frozenset[str]:
    """The names that follow the keyword `module` in `text`, read textually: a module of text that does not
    parse, or one in a comment, counts too (the official harnesses' checks read code this way).

    ```python
    >>> sorted(declared_modules("module a(input x); endmodule // module b\\nmacromodule c; endmodule"))
    ['a', 'b', 'c']

    ```
    """
    return frozenset(_MODULE_NAME.findall(text))
