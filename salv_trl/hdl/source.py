"""Safe pyslang parsing of untrusted Verilog text, with Python character offsets.

Facts measured on pyslang 12.1.0 that this module guards against:

- source locations are UTF-8 *byte* offsets; everything salv-trl hands out is Python *character* offsets
  into the caller's text, so every location goes through [`Source.char`];
- `` `include "/dev/zero" `` hangs the preprocessor and `` `include "/etc/..." `` reads host files, so include
  directives are blanked with spaces (offsets unchanged) before parsing, with a warning;
- the default language is SystemVerilog, so Verilog-2001 code that names signals `logic`, `bit` or `int`
  fails to parse: such text is parsed again under `` `begin_keywords "1364-2005" `` and the better parse wins;
- nesting beyond ~1024 levels raises a bare `RuntimeError('')`, and NUL bytes or empty text are not Verilog:
  all of these become a [`VerilogInputError`] with a clear message.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyslang
from pyslang import syntax as pysyntax

__all__ = ["Source", "VerilogInputError", "deep_recursion", "load_source"]

# `include followed by its file name (quoted, angled, or a macro), possibly split over continuation lines.
_INCLUDE = re.compile(r"`include\b[ \t]*(?:\"[^\"\n]*\"?|<[^>\n]*>?|`\w+)?")
_VERILOG_2005 = '`begin_keywords "1364-2005" '  # same line as the text: line numbers stay exact
_MAX_CHARS = 2_000_000


class VerilogInputError(ValueError):
    """The text cannot be treated as Verilog at all (empty, binary, pathologically nested, no module...)."""


@dataclass
class Source:
    """A parsed text: the pyslang tree plus the means to map its locations back to `text`.

    Args:
        text: the caller's text, unchanged; all offsets handed out index into it.
        tree: the pyslang syntax tree of the sanitised text.
        warnings: what was changed or assumed to parse it (blanked includes, Verilog-2005 keywords).
        macros: whether the parsed text may use a macro (it has a backtick that starts no plain directive):
            only then can a location lie inside a macro expansion.
    """

    text: str
    tree: pysyntax.SyntaxTree
    warnings: list[str] = field(default_factory=list)
    macros: bool = True
    _shift: int = 0  # bytes of keyword prefix before the text
    _byte_starts: list[int] | None = None  # byte offset of each character, when the text is not ASCII

    @property
    def source_manager(self) -> pyslang.SourceManager:
        return self.tree.sourceManager

    def char(self, byte_offset: int) -> int:
        """Character offset into `text` of a byte offset into the parsed buffer."""
        offset = byte_offset - self._shift if byte_offset > self._shift else 0  # per token: no max()
        if self._byte_starts is None:
            return offset if offset < len(self.text) else len(self.text)
        return bisect_right(self._byte_starts, offset) - 1

    def file_location(self, location: pyslang.SourceLocation, end: bool = False) -> int:
        """Character offset of a location; a location inside a macro expansion maps to the macro usage."""
        if self.macros:
            manager = self.source_manager
            while manager.isMacroLoc(location):
                expansion = manager.getExpansionRange(location)
                location = expansion.end if end else expansion.start
        return self.char(location.offset)

    def span(self, node: pysyntax.SyntaxNode | pyslang.parsing.Token) -> tuple[int, int]:
        """`[start, end)` character span of a syntax node or token (macro expansions widen to the usage)."""
        rng = node.range if isinstance(node, pyslang.parsing.Token) else node.sourceRange
        if self.macros:
            return self.file_location(rng.start), self.file_location(rng.end, end=True)
        return self.char(rng.start.offset), self.char(rng.end.offset)  # no macro: locations are the file's

    def line_column(self, location: pyslang.SourceLocation) -> tuple[int, int]:
        """1-based line and column (in characters) of a location."""
        start = self.file_location(location)
        line = self.text.count("\n", 0, start) + 1
        return line, start - (self.text.rfind("\n", 0, start) + 1) + 1


def _blank_includes(text: str) -> tuple[str, list[str]]:
    warnings = []

    def blank(match: re.Match) -> str:
        line = text.count("\n", 0, match.start()) + 1
        warnings.append(
            f"line {line}: ignored `{match.group(0).strip()}` (include directives are not followed)"
        )
        return re.sub(r"[^\n]", " ", match.group(0))

    return _INCLUDE.sub(blank, text), warnings


# Directives the preprocessor passes through unchanged, taking no macro.
PLAIN_DIRECTIVES = frozenset({"`timescale", "`default_nettype", "`resetall", "`celldefine", "`endcelldefine"})
DIRECTIVE_NAME = re.compile(r"`[A-Za-z_][A-Za-z0-9_$]*")


def uses_macros(text: str) -> bool:
    """Whether `text` has a backtick that starts no plain directive (a macro, an include, a conditional...):
    a text without one preprocesses to itself."""
    if "`" not in text:  # most texts: no scan at all
        return False
    names = DIRECTIVE_NAME.finditer(text)
    return any(m.group(0) not in PLAIN_DIRECTIVES for m in names) or "`" in DIRECTIVE_NAME.sub("", text)


_DEFINE = re.compile(r"`define[ \t]+(\w+)(\([^)\n]*\))?((?:\\\n|[^\n])*)")
_MACRO_TOKEN = re.compile(r"`(\w+)[ \t]*(\()?|\(|\)|\w+|[^\s\w`()]")
_MAX_EXPANSION = 2_000_000  # tokens: pyslang expands macros without a limit, so a "macro bomb" never ends


def _expansion(segment: str, macros: dict, sizes: dict, factors: dict) -> tuple[int, int]:
    """Upper bounds on the tokens that macro uses in `segment` produce, and on the copies made of a token."""
    total, most, stack, depth = 0, 1, [], 0  # stack: (paren depth, copy factor) of the enclosing macro calls
    for match in _MACRO_TOKEN.finditer(segment):
        name, call = match.group(1), match.group(2)
        factor = stack[-1][1] if stack else 1
        if name is not None:
            if name in macros:
                total += _macro_size(name, macros, sizes, factors) * factor
                if call:
                    depth += 1
                    stack.append((depth, factor * factors.get(name, 1)))
                    most = max(most, stack[-1][1])
            elif call:
                depth += 1
        elif match.group(0) == "(":
            depth += 1
        elif match.group(0) == ")":
            if stack and stack[-1][0] == depth:
                stack.pop()
            depth -= 1
        elif stack:  # a plain token inside a macro argument: copied as often as the argument is
            total += factor
        if total > _MAX_EXPANSION:
            break
    return total, most


def _macro_size(name: str, macros: dict, sizes: dict, factors: dict) -> int:
    if name not in sizes:
        sizes[name] = 1  # recursion guard: pyslang reports recursive macros itself
        parameters, body = macros[name]
        used, copies = _expansion(body, macros, sizes, factors)
        occurrences = max((len(re.findall(rf"\b{re.escape(p)}\b", body)) for p in parameters), default=1)
        factors[name] = max(1, occurrences) * copies
        sizes[name] = len(body.split()) + 1 + used
    return sizes[name]


def _check_macro_expansion(text: str) -> None:
    """Refuse text whose macros would expand to more than `_MAX_EXPANSION` tokens (estimated from above)."""
    macros = {}
    for match in _DEFINE.finditer(text):
        parameters = re.findall(r"\w+", match.group(2) or "")
        macros[match.group(1)] = (parameters, match.group(3))
    rest = _DEFINE.sub("", text)
    sizes: dict[str, int] = {}
    factors: dict[str, int] = {}
    total, _ = _expansion(rest, macros, sizes, factors)
    if total > _MAX_EXPANSION:
        raise VerilogInputError(f"macros would expand to more than {_MAX_EXPANSION} tokens")


def _error_count(tree: pysyntax.SyntaxTree) -> int:
    return sum(1 for diagnostic in tree.diagnostics if diagnostic.isError())


def load_source(text: str) -> Source:
    """Parse untrusted Verilog text with pyslang, safely.

    Args:
        text: Verilog or SystemVerilog source.

    Returns:
        A [`Source`]; syntax errors stay in `tree.diagnostics` for the caller to report.

    Raises:
        VerilogInputError: empty text, NUL bytes, text that is not encodable as UTF-8, more than 2M
            characters, or nesting too deep for the parser.
    """
    if not isinstance(text, str):
        raise VerilogInputError(f"expected Verilog text as str, got {type(text).__name__}")
    if not text.strip():
        raise VerilogInputError("empty Verilog text")
    if "\0" in text:
        raise VerilogInputError(f"NUL byte at character {text.index(chr(0))}: not Verilog text")
    if len(text) > _MAX_CHARS:
        raise VerilogInputError(f"Verilog text too long ({len(text)} characters, limit {_MAX_CHARS})")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise VerilogInputError(f"text is not valid Unicode at character {error.start}") from None
    clean, warnings = _blank_includes(text) if "`include" in text else (text, [])
    if "`define" in clean:
        _check_macro_expansion(clean)
    byte_starts = None
    if len(encoded) != len(text):
        byte_starts, position = [], 0
        for character in text:
            byte_starts.append(position)
            position += len(character.encode("utf-8"))
        byte_starts.append(position)
    try:
        tree = pysyntax.SyntaxTree.fromText(clean, pyslang.SourceManager())
        shift = 0
        if _error_count(tree) and re.search(
            r"\b(logic|bit|int|byte|string|type|var|unique|priority)\b", clean
        ):
            fallback = pysyntax.SyntaxTree.fromText(_VERILOG_2005 + clean, pyslang.SourceManager())
            if _error_count(fallback) < _error_count(tree):
                tree, shift = fallback, len(_VERILOG_2005)
                warnings.append(
                    "parsed with Verilog-2005 keywords: the text uses SystemVerilog keywords as names"
                )
    except RuntimeError as error:  # pyslang's recursion guard raises a bare RuntimeError('')
        raise VerilogInputError(
            f"Verilog text is nested too deeply to parse {str(error) or ''}".strip()
        ) from None
    return Source(text, tree, warnings, uses_macros(clean), _shift=shift, _byte_starts=byte_starts)


@contextmanager
def deep_recursion(limit: int = 20_000):
    """Let recursive walks follow the deepest nesting pyslang accepts (~1024 levels, a few frames each).

    Raises the interpreter's recursion limit for the duration (never lowers it), and turns a RecursionError
    into a [`VerilogInputError`], so no input can crash the caller.
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    except RecursionError:
        raise VerilogInputError("Verilog text is nested too deeply to analyse") from None
    finally:
        sys.setrecursionlimit(previous)
