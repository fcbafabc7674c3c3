"""Refuse candidate Verilog that could reach outside the simulation sandbox or forge the harness's verdict.

The check works on pyslang's raw token stream (no preprocessing, so nothing is read from disk), which means
that forbidden names inside strings or comments never cause a refusal, while a forbidden system task is
caught wherever it is called. Refused:

- `$system` and every file-I/O system task (`$fopen`, `$fwrite`, `$fdisplay`, `$readmemh`, `$writememb`,
  `$dumpfile`, `$dumpvars`, `$sdf_annotate`, ...);
- system tasks that end the simulation (`$finish`, `$stop`, `$exit`, `$fatal`): a candidate that stops the run
  before the harness prints its lines could otherwise make forged lines the only ones;
- `` `include `` and other directives outside a small harmless set, and macro token pasting (which could
  assemble a forbidden name from harmless pieces);
- `import "DPI-C"` (foreign code) and `$root` (absolute hierarchical references into the harness);
- NUL characters and texts larger than `max_chars`.
"""

from __future__ import annotations

import re

import pyslang
from pyslang import parsing

__all__ = ["screen", "FORBIDDEN_SYSTEM_TASKS", "ALLOWED_DIRECTIVES", "MAX_CHARS"]

FORBIDDEN_SYSTEM_TASKS = frozenset(
    {
        "$system",
        "$finish",
        "$stop",
        "$exit",
        "$fatal",
        "$sdf_annotate",
        "$test$plusargs",
        "$value$plusargs",
        "$fopen",
        "$fclose",
        "$fflush",
        "$fread",
        "$fgets",
        "$fgetc",
        "$fscanf",
        "$ftell",
        "$fseek",
        "$feof",
        "$ferror",
        "$rewind",
        "$ungetc",
        "$fwrite",
        "$fwriteb",
        "$fwriteh",
        "$fwriteo",
        "$fdisplay",
        "$fdisplayb",
        "$fdisplayh",
        "$fdisplayo",
        "$fstrobe",
        "$fstrobeb",
        "$fstrobeh",
        "$fstrobeo",
        "$fmonitor",
        "$fmonitorb",
        "$fmonitorh",
        "$fmonitoro",
        "$readmemh",
        "$readmemb",
        "$writememh",
        "$writememb",
        "$input",
        "$key",
        "$log",
        "$save",
        "$restart",
        "$incsave",
        "$scope",
        "$list",
        "$nokey",
        "$nolog",
        "$reset",
    }
)
# Families matched by prefix: VCD/EVCD dumping writes files; $ivl_* and $vpi_* reach simulator internals.
_FORBIDDEN_PREFIXES = ("$dump", "$readmem", "$writemem", "$ivl_", "$vpi_")

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
_DIRECTIVE_NAME = re.compile(r"`[A-Za-z_][A-Za-z0-9_$]*")


MAX_CHARS = 1_000_000  # far more than any model completion; larger inputs only cost time


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
    'forbidden system task $system at offset 18'

    ```
    """
    if len(text) > max_chars:
        return f"source too large ({len(text)} characters > {max_chars})"
    if "\0" in text:
        return f"NUL character at offset {text.index(chr(0))}"
    defined: set[str] = set()
    tokens = _tokens(text)
    for index, (kind, raw, offset) in enumerate(tokens):
        if kind == parsing.TokenKind.SystemIdentifier:
            name = raw.lower()
            if name in FORBIDDEN_SYSTEM_TASKS or name.startswith(_FORBIDDEN_PREFIXES):
                return f"forbidden system task {raw} at offset {offset}"
        elif kind == parsing.TokenKind.RootSystemName:
            return f"absolute hierarchical reference $root at offset {offset}"
        elif kind == parsing.TokenKind.MacroPaste:
            return f"macro token pasting at offset {offset}"
        elif kind == parsing.TokenKind.ImportKeyword and index + 1 < len(tokens):
            if tokens[index + 1][0] == parsing.TokenKind.StringLiteral:
                return f"foreign import {tokens[index + 1][1]} at offset {offset}"
        elif kind == parsing.TokenKind.Directive:
            name = _DIRECTIVE_NAME.match(raw)
            name = name.group(0) if name else raw
            if name == "`define" and index + 1 < len(tokens):
                defined.add("`" + tokens[index + 1][1])
            elif name not in ALLOWED_DIRECTIVES and name not in defined:
                return f"forbidden directive {name} at offset {offset}"
    return None


def _tokens(text: str) -> list[tuple[object, str, int]]:
    """Raw lexer tokens (kind, text, character offset) of `text`, without running the preprocessor."""
    manager = pyslang.SourceManager()
    lexer = parsing.Lexer(manager.assignText(text), pyslang.BumpAllocator(), pyslang.Diagnostics(), manager)
    # pyslang offsets count UTF-8 bytes; map them back to Python character offsets.
    encoded = text.encode("utf-8", errors="surrogatepass")
    ascii_only = len(encoded) == len(text)
    tokens = []
    while True:
        token = lexer.lex()
        if token.kind == parsing.TokenKind.EndOfFile:
            return tokens
        offset = token.location.offset
        if not ascii_only:
            offset = len(encoded[:offset].decode("utf-8", errors="replace"))
        tokens.append((token.kind, token.rawText, offset))
