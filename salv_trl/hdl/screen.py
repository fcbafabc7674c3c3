"""Refuse candidate Verilog that calls anything but pure computation and display: an allowlist screen.

The screen is a convenience in front of the boundary, not the boundary ([`salv_trl.hdl.sandbox`] isolates
every process, and the judges read verdicts through channels the candidate cannot write). It refuses early,
with a clear reason, what a Verilog module for a benchmark never needs:

- any system task or function outside [`ALLOWED_SYSTEM_TASKS`] (computation, math, random numbers, display to
  stdout, severity messages): file and host access (`$fopen`, `$readmemh`, `$dumpfile`, `$system`,
  `$table_model`, ...), ending the run (`$finish`, `$finish_and_return`, `$stop`, `$fatal`), plusargs and the
  simulator's internal tasks are all refused, whatever their name, including names this screen has never seen;
- escaped identifiers (`\\$finish ` is an identifier for one lexer and a system task for Icarus), SV-2023
  triple-quoted strings (one string for pyslang, code for Icarus), `$root`, a lone `$`, `import "DPI-C"`,
  macro token pasting, and directives outside a small harmless set (`` `include `` among them);
- NUL characters and texts larger than `max_chars`.

The text is read by two lexers and refused when either sees a forbidden token: pyslang's, and a scanner of
Icarus's Verilog-2005 lexical rules (comments and strings removed, then every `$name` and `\\` checked), so a
construct the two lexers read differently cannot hide a call from one of them. A text that uses macros is also
screened as Icarus's preprocessor expands it (`iverilog -E` in the sandbox), because expansion can glue a
forbidden name from harmless pieces (`` `M($write)memh ``); a macro bomb that the preprocessor cannot expand
within the sandbox's limits is refused.
"""

from __future__ import annotations

import re
import signal

import pyslang
from pyslang import parsing

from .source import DIRECTIVE_NAME, uses_macros

__all__ = ["screen", "ALLOWED_SYSTEM_TASKS", "ALLOWED_DIRECTIVES", "MAX_CHARS"]

_DISPLAY = {
    f"${base}{radix}" for base in ("display", "write", "strobe", "monitor") for radix in ("", "b", "h", "o")
}
ALLOWED_SYSTEM_TASKS = frozenset(
    _DISPLAY
    | {f"$swrite{radix}" for radix in ("", "b", "h", "o")}
    | {
        "$monitoron",
        "$monitoroff",
        "$sformat",
        "$sformatf",
        "$sscanf",
        "$error",
        "$warning",
        "$info",
        "$time",
        "$stime",
        "$realtime",
        "$timeformat",
        "$printtimescale",
        "$random",
        "$urandom",
        "$urandom_range",
        "$dist_uniform",
        "$dist_normal",
        "$dist_exponential",
        "$dist_poisson",
        "$dist_chi_square",
        "$dist_t",
        "$dist_erlang",
        "$signed",
        "$unsigned",
        "$cast",
        "$clog2",
        "$bits",
        "$size",
        "$left",
        "$right",
        "$low",
        "$high",
        "$increment",
        "$dimensions",
        "$unpacked_dimensions",
        "$countones",
        "$countbits",
        "$onehot",
        "$onehot0",
        "$isunknown",
        "$itor",
        "$rtoi",
        "$bitstoreal",
        "$realtobits",
        "$bitstoshortreal",
        "$shortrealtobits",
        "$ln",
        "$log10",
        "$exp",
        "$sqrt",
        "$pow",
        "$floor",
        "$ceil",
        "$sin",
        "$cos",
        "$tan",
        "$asin",
        "$acos",
        "$atan",
        "$atan2",
        "$hypot",
        "$sinh",
        "$cosh",
        "$tanh",
        "$asinh",
        "$acosh",
        "$atanh",
        "$abs",
        "$min",
        "$max",
    }
)

ALLOWED_DIRECTIVES = frozenset(
    {
        "`timescale",
        "`define",
        "`undef",
        "`undefineall",
        "`ifdef",
        "`ifndef",
        "`elsif",
        "`else",
        "`endif",
        "`default_nettype",
        "`resetall",
        "`celldefine",
        "`endcelldefine",
        "`unconnected_drive",
        "`nounconnected_drive",
        "`begin_keywords",
        "`end_keywords",
        "`line",
        "`__LINE__",
    }
)

MAX_CHARS = 1_000_000  # far more than any model completion; larger inputs only cost time

# Icarus's Verilog-2005 lexical view: comments, and strings (no newline inside, backslash escapes), are not
# code.
_ICARUS_NON_CODE = re.compile(r'//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:[^"\\\n]|\\.)*"?', re.DOTALL)
_ICARUS_SYSTEM_NAME = re.compile(r"(?<![A-Za-z0-9_$])\$[A-Za-z0-9_$]*")


def screen(text: str, *, max_chars: int = MAX_CHARS) -> str | None:
    """Return why `text` must not be simulated, or None when it may be.

    Args:
        text: candidate Verilog source.
        max_chars: longest text accepted (a model completion is far shorter; huge inputs only cost time).

    Example:
    ```python
    >>> screen('module m; initial $display("$system is mentioned, not called"); endmodule') is None
    True
    >>> screen('module m; initial $system("rm -rf /"); endmodule')
    'system task $system is not allowed (offset 18)'

    ```
    """
    if len(text) > max_chars:
        return f"source too large ({len(text)} characters > {max_chars})"
    if "\0" in text:
        return f"NUL character at offset {text.index(chr(0))}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"not valid text: {error.reason} at offset {error.start}"
    reason = _screen_tokens(text) or _screen_icarus_view(text)
    if reason or not uses_macros(text):
        return reason
    expanded = _expand(text)
    if expanded.startswith("\0"):
        return expanded[1:]
    reason = _screen_tokens(expanded) or _screen_icarus_view(expanded)
    return f"after macro expansion: {reason}" if reason else None


_KIND = parsing.TokenKind
# The token kinds the screen looks at, with the text each kind's raw text contains, whatever else it holds.
# Tokens are pieces of the text as written (no preprocessing), so a text containing none of these cannot hold
# any such token, and needs no lexing.
_WATCHED = {
    _KIND.SystemIdentifier: "$",
    _KIND.RootSystemName: "$",
    _KIND.Dollar: "$",
    _KIND.Identifier: "\\",  # only escaped identifiers matter
    _KIND.StringLiteral: '"""',  # only triple-quoted strings matter
    _KIND.MacroPaste: "``",
    _KIND.ImportKeyword: "import",
    _KIND.Directive: "`",
}


def _screen_tokens(text: str) -> str | None:
    """pyslang's reading of `text` (no preprocessing, so nothing is read from disk)."""
    watched = frozenset(kind for kind, needle in _WATCHED.items() if needle in text)
    if not watched:
        return None
    defined: set[str] = set()
    tokens = _tokens(text, watched)
    for index, (kind, raw, offset) in enumerate(tokens):
        if kind == _KIND.SystemIdentifier:
            if raw not in ALLOWED_SYSTEM_TASKS:
                return f"system task {raw} is not allowed (offset {offset})"
        elif kind == _KIND.Identifier:
            if raw.startswith("\\"):
                return f"escaped identifier {raw[:40]} (offset {offset})"
        elif kind == _KIND.StringLiteral:
            if raw.startswith('"""'):
                return f"triple-quoted string (offset {offset})"
        elif kind == _KIND.RootSystemName:
            return f"absolute hierarchical reference $root (offset {offset})"
        elif kind == _KIND.Dollar:
            return f"lone $ (offset {offset})"
        elif kind == _KIND.MacroPaste:
            return f"macro token pasting (offset {offset})"
        elif kind == _KIND.ImportKeyword:
            if index + 1 < len(tokens) and tokens[index + 1][0] == _KIND.StringLiteral:
                return f"foreign import {tokens[index + 1][1]} (offset {offset})"
        elif kind == _KIND.Directive:
            name = DIRECTIVE_NAME.match(raw)
            name = name.group(0) if name else raw
            if name == "`define" and index + 1 < len(tokens):
                defined.add("`" + tokens[index + 1][1])
            elif name not in ALLOWED_DIRECTIVES and name not in defined:
                return f"directive {name} is not allowed (offset {offset})"
    return None


def _screen_icarus_view(text: str) -> str | None:
    """The same checks on the code as Icarus's lexer delimits it (comments and strings blanked out)."""
    if "$" not in text and "\\" not in text and '"""' not in text:  # nothing to find, blanked or not
        return None
    code = _ICARUS_NON_CODE.sub(lambda m: " " * len(m.group(0)), text)
    for match in _ICARUS_SYSTEM_NAME.finditer(code):
        if match.group(0) not in ALLOWED_SYSTEM_TASKS:
            return f"system task {match.group(0)} is not allowed (offset {match.start()})"
    if "\\" in code:
        return f"escaped identifier (offset {code.index(chr(92))})"
    if '"""' in text:
        return f"triple-quoted string (offset {text.index(chr(34) * 3)})"
    return None


def _expand(text: str) -> str:
    """`text` as Icarus's preprocessor expands it in the sandbox; a NUL-prefixed refusal when it cannot."""
    from .sandbox import Sandbox, SandboxLimits

    limits = SandboxLimits(
        cpu_seconds=10, memory_bytes=1 << 30, file_bytes=8 * MAX_CHARS, output_bytes=1 << 20
    )
    with Sandbox({"in.v": text}, limits) as box:
        result = box.run(["iverilog", "-E", "-o", "out.v", "in.v"], timeout=30)
        out = box.path / "out.v"
        size = out.stat().st_size if out.is_file() else 0
        if not result.ok or size > 4 * MAX_CHARS:
            why = (
                "timed out"
                if result.timed_out
                else f"failed: {(result.stderr or result.stdout).strip()[:200]}"
            )
            if size > 4 * MAX_CHARS or result.returncode in _LIMIT_SIGNALS:
                why = "exceeded the sandbox's limits (a macro bomb)"
            return f"\0the preprocessor {why}"
        return out.read_text(encoding="utf-8", errors="replace")


_LIMIT_SIGNALS = (-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGXFSZ)


def _tokens(text: str, kinds: frozenset) -> list[tuple[object, str, int]]:
    """Raw lexer tokens (kind, text, character offset) of `text` whose kind is in `kinds`, each with the token
    that follows it, without running the preprocessor."""
    manager = pyslang.SourceManager()
    lexer = parsing.Lexer(manager.assignText(text), pyslang.BumpAllocator(), pyslang.Diagnostics(), manager)
    # pyslang offsets count UTF-8 bytes; map them back to Python character offsets.
    encoded = text.encode("utf-8")
    ascii_only = len(encoded) == len(text)
    tokens = []
    end, follows = _KIND.EndOfFile, False  # `follows`: the previous token was kept
    while True:
        token = lexer.lex()
        kind = token.kind
        if kind is end:
            return tokens
        keep = kind in kinds
        if keep or follows:
            offset = token.location.offset
            if not ascii_only:
                offset = len(encoded[:offset].decode("utf-8", errors="replace"))
            tokens.append((kind, token.rawText, offset))
        follows = keep
