"""Verilog front end: diagnostics, modules, the top module and its interface, with pyslang.

```python
>>> from salv_trl.hdl.parse import parse
>>> design = parse("module add(input [3:0] a, b, output [4:0] s); assign s = a + b; endmodule")
>>> design.top, [(p.name, p.direction, p.width) for p in design.interface.ports]
('add', [('a', 'input', 4), ('b', 'input', 4), ('s', 'output', 5)])

```

The top module is `top=` when given; otherwise the first module that no other module instantiates, among the
modules that do not look like a testbench (a testbench has no ports, or a name such as `tb`, `tb_x`, `x_tb`,
`testbench`, `test_x`); testbenches are considered only when every module looks like one. So a testbench
pasted after (or before) the design never becomes the top, whatever it instantiates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import pyslang
from pyslang import ast as pyast
from pyslang import syntax as pysyntax
from pyslang.parsing import Token, TokenKind

from .source import Source, VerilogInputError, deep_recursion, load_source

__all__ = [
    "outside_reference",
    "Diagnostic",
    "ModuleInterface",
    "ModuleSpan",
    "Parameter",
    "ParsedDesign",
    "Port",
    "VerilogInputError",
    "module_spans",
    "parse",
    "rename_modules",
]

Kind = pysyntax.SyntaxKind
_TESTBENCH_NAME = re.compile(r"^(tb|test)(_|$)|_tb$|^tb|testbench|test_?bench", re.IGNORECASE)
_DIRECTIONS = {
    TokenKind.InputKeyword: "input",
    TokenKind.OutputKeyword: "output",
    TokenKind.InOutKeyword: "inout",
    TokenKind.RefKeyword: "ref",
}
_ARGUMENT_DIRECTIONS = {"In": "input", "Out": "output", "InOut": "inout", "Ref": "ref"}


@dataclass(frozen=True)
class Diagnostic:
    """One parser or elaboration message, at a 1-based line and column (in characters)."""

    line: int
    column: int
    message: str
    severity: str  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class Port:
    """A port of a module: `width` is the packed width in bits, `msb`/`lsb` its declared range bounds."""

    name: str
    direction: str  # "input", "output", "inout" or "ref"
    width: int
    signed: bool
    msb: int
    lsb: int


@dataclass(frozen=True)
class Parameter:
    """A parameter with its default as written (`default`) and its elaborated value when it is an integer."""

    name: str
    default: str
    value: int | None
    local: bool


@dataclass(frozen=True)
class ModuleInterface:
    """The interface of a module.

    Args:
        name: module name.
        ports: ports in declaration order.
        parameters: parameters and localparams in declaration order (type parameters are left out).
        edge_events: input port name -> the edges (`"posedge"`, `"negedge"`) it is used with in event controls
            anywhere in the design below this module, followed through instance port connections. This is how
            stimulus generators tell clocks and asynchronous resets from data inputs.
    """

    name: str
    ports: tuple[Port, ...]
    parameters: tuple[Parameter, ...] = ()
    edge_events: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)

    @property
    def inputs(self) -> tuple[Port, ...]:
        return tuple(port for port in self.ports if port.direction == "input")

    @property
    def outputs(self) -> tuple[Port, ...]:
        return tuple(port for port in self.ports if port.direction in ("output", "inout"))

    def port(self, name: str) -> Port:
        """The port called `name` (KeyError when there is none)."""
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(name)


class ModuleSpan(NamedTuple):
    """Character span `[start, end)` of a module declaration, and of its name token."""

    start: int
    end: int
    name_start: int
    name_end: int


@dataclass
class ModuleSyntax:
    """A module declaration of a parsed text (used by the slicer too)."""

    name: str
    node: pysyntax.ModuleDeclarationSyntax
    ports: list[tuple[str, str]]  # (name, direction) in port order
    instances: list[pysyntax.SyntaxNode]  # HierarchyInstantiation / PrimitiveInstantiation nodes
    edges: dict[str, set[str]]  # local name -> edges it is used with in event controls

    @property
    def instantiated(self) -> set[str]:
        return {node.type.valueText for node in self.instances if node.kind == Kind.HierarchyInstantiation}


@dataclass
class ParsedDesign:
    """The result of [`parse`]: diagnostics, the modules of the text, and the top module's interface.

    It keeps the parse it was made from (`source`, `syntax`), so that every later stage (blanking what the top
    does not reach, renaming, interface checks, slicing) works on the same tree instead of parsing the text
    again.
    """

    text: str
    diagnostics: list[Diagnostic]
    modules: list[str]
    top: str
    interface: ModuleInterface
    warnings: list[str] = field(default_factory=list)
    source: Source | None = field(default=None, repr=False, compare=False)
    syntax: list[ModuleSyntax] = field(default_factory=list, repr=False, compare=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [diagnostic for diagnostic in self.diagnostics if diagnostic.severity == "error"]

    def reachable(self) -> set[str]:
        """The names of the modules the top reaches through its instances (itself included)."""
        by_name: dict[str, ModuleSyntax] = {}
        for module in self.syntax:
            by_name.setdefault(module.name, module)
        kept: set[str] = set()
        todo = [self.top]
        while todo:
            name = todo.pop()
            if name in by_name and name not in kept:
                kept.add(name)
                todo += by_name[name].instantiated
        return kept

    def design_only(self) -> tuple[str, set[str]]:
        """The text with every module that the top does not reach blanked out (a pasted testbench with
        `$finish` or `$dumpfile`, unused helpers), offsets and line numbers unchanged; and the names of the
        modules kept."""
        kept, text = self.reachable(), self.text
        for module in self.syntax:
            if module.name not in kept:
                start, end = self.source.span(module.node)
                text = text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]
        return text, kept


def syntax_nodes(items) -> list[pysyntax.SyntaxNode]:
    """The nodes of a (separated) syntax list, without the separator tokens."""
    return [item for item in items if isinstance(item, pysyntax.SyntaxNode)]


def find_nodes(node: pysyntax.SyntaxNode, *kinds: pysyntax.SyntaxKind) -> list[pysyntax.SyntaxNode]:
    """All nodes of the given kinds below `node`, in source order (the walk happens in C++)."""
    found: list[pysyntax.SyntaxNode] = []
    node.visit(lookup_table={kind: found.append for kind in kinds})
    return found


def identifier_tokens(node: pysyntax.SyntaxNode) -> list[Token]:
    """The identifier tokens below `node`, in source order (the walk happens in C++)."""
    tokens: list[Token] = []
    node.visit(lookup_table={TokenKind.Identifier: tokens.append})
    return tokens


def _header_ports(module: pysyntax.ModuleDeclarationSyntax) -> list[tuple[str, str]]:
    ports_syntax = module.header.ports
    if ports_syntax is None:
        return []
    declared: dict[str, str] = {}
    for member in module.members:
        if member.kind == Kind.PortDeclaration:
            keyword = getattr(member.header, "direction", None)  # interface ports have none
            direction = _DIRECTIONS.get(keyword.kind, "inout") if keyword is not None else "inout"
            for declarator in syntax_nodes(member.declarators):
                declared[declarator.name.valueText] = direction
    ports, direction = [], "inout"  # SystemVerilog: a first port without a direction is inout
    for port in syntax_nodes(getattr(ports_syntax, "ports", ())):
        if port.kind == Kind.ImplicitAnsiPort:
            header_direction = getattr(port.header, "direction", None)
            if header_direction is not None and header_direction.kind in _DIRECTIONS:
                direction = _DIRECTIONS[header_direction.kind]
            ports.append((port.declarator.name.valueText, direction))
        elif port.kind == Kind.ExplicitAnsiPort:
            direction = _DIRECTIONS.get(port.direction.kind, direction)
            ports.append((port.name.valueText, direction))
        else:  # non-ANSI: `(a, b)` with directions in the body
            names = [token.valueText for token in identifier_tokens(port)]
            if names:
                ports.append((names[0], declared.get(names[0], "inout")))
    return ports


def _edges(module: pysyntax.SyntaxNode) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for event in find_nodes(module, Kind.SignalEventExpression):
        edge = {TokenKind.PosEdgeKeyword: "posedge", TokenKind.NegEdgeKeyword: "negedge"}.get(event.edge.kind)
        if edge:
            for token in identifier_tokens(event.expr):
                edges.setdefault(token.valueText, set()).add(edge)
    return edges


def module_syntax(source: Source) -> list[ModuleSyntax]:
    """Every module declaration of a parsed text, in source order."""
    modules = []
    for node in find_nodes(source.tree.root, Kind.ModuleDeclaration):
        name = node.header.name
        if name.isMissing:
            continue
        instances = find_nodes(node, Kind.HierarchyInstantiation, Kind.PrimitiveInstantiation)
        edges = _edges(node) if "edge" in source.text else {}  # no posedge or negedge to look for
        modules.append(ModuleSyntax(name.valueText, node, _header_ports(node), instances, edges))
    return modules


def looks_like_testbench(module: ModuleSyntax) -> bool:
    """A module without ports, or named like a testbench."""
    return not module.ports or bool(_TESTBENCH_NAME.search(module.name))


def choose_top(
    modules: list[ModuleSyntax], top: str | None = None, *, prefer: str | None = None
) -> ModuleSyntax:
    """The top module: `top` when given; else `prefer` when a module has that name (a task's top, which a
    candidate may or may not have kept); else the heuristic of this module's docstring. The one top-module
    rule of salv-trl: training, verification and evaluation all choose through it."""
    if not modules:
        raise VerilogInputError("no module declaration found")
    if top is None and prefer is not None and any(module.name == prefer for module in modules):
        top = prefer
    if top is not None:
        for module in modules:
            if module.name == top:
                return module
        raise VerilogInputError(
            f"top module {top!r} not found (modules: {', '.join(m.name for m in modules)})"
        )
    designs = [module for module in modules if not looks_like_testbench(module)] or modules
    instantiated = set().union(*(module.instantiated for module in designs))
    return next((module for module in designs if module.name not in instantiated), designs[0])


def edge_events(modules: list[ModuleSyntax], top: ModuleSyntax) -> dict[str, frozenset[str]]:
    """Input port of `top` -> edges it reaches in event controls, through instance port connections."""
    edges = _port_edges(top, frozenset({top.name}), {module.name: module for module in modules}, {})
    return {
        name: frozenset(edges[name])
        for name, direction in top.ports
        if direction == "input" and name in edges
    }


def _port_edges(
    module: ModuleSyntax,
    active: frozenset[str],
    by_name: dict[str, ModuleSyntax],
    memo: dict[str, dict[str, set[str]]],
) -> dict[str, set[str]]:
    """Local name of `module` -> edges it reaches (`active`: modules being followed, `memo`: those done)."""
    if module.name in memo:
        return memo[module.name]
    edges = {name: set(found) for name, found in module.edges.items()}
    for node in module.instances:
        child = by_name.get(node.type.valueText) if node.kind == Kind.HierarchyInstantiation else None
        if child is None or child.name in active:
            continue
        child_edges = _port_edges(child, active | {child.name}, by_name, memo)
        child_ports = [name for name, _ in child.ports]
        for instance in syntax_nodes(node.instances):
            for index, connection in enumerate(syntax_nodes(instance.connections)):
                if connection.kind == Kind.NamedPortConnection:
                    port = connection.name.valueText
                elif connection.kind == Kind.OrderedPortConnection and index < len(child_ports):
                    port = child_ports[index]
                else:
                    continue
                expression = getattr(connection, "expr", None)
                if port in child_edges and expression is not None:
                    for token in identifier_tokens(expression):
                        edges.setdefault(token.valueText, set()).update(child_edges[port])
    memo[module.name] = edges
    return edges


def _diagnostics(source: Source, diagnostics) -> list[Diagnostic]:
    engine = pyslang.DiagnosticEngine(source.source_manager)
    result, seen = [], set()
    for diagnostic in diagnostics:
        severity = engine.getSeverity(diagnostic.code, diagnostic.location)
        if severity not in (
            pyslang.DiagnosticSeverity.Error,
            pyslang.DiagnosticSeverity.Fatal,
            pyslang.DiagnosticSeverity.Warning,
        ):
            continue
        line, column = source.line_column(diagnostic.location)
        message = engine.formatMessage(diagnostic)
        item = Diagnostic(
            line, column, message, "warning" if severity == pyslang.DiagnosticSeverity.Warning else "error"
        )
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


def _interface(source: Source, body, modules: list[ModuleSyntax], top: ModuleSyntax) -> ModuleInterface:
    ports = []
    for symbol in body.portList:
        kind = getattr(symbol, "type", None)
        if kind is None:  # interface ports have no packed type
            continue
        width = kind.bitWidth
        msb, lsb = (kind.fixedRange.left, kind.fixedRange.right) if kind.hasFixedRange else (width - 1, 0)
        direction = _ARGUMENT_DIRECTIONS.get(symbol.direction.name, "inout")
        ports.append(Port(symbol.name, direction, width, bool(kind.isSigned), msb, lsb))
    parameters = []
    for symbol in body.parameters:
        if symbol.isType:
            continue
        initializer = getattr(symbol.syntax, "initializer", None) if symbol.syntax is not None else None
        default = ""
        if initializer is not None and initializer.expr is not None:
            start, end = source.span(initializer.expr)
            default = source.text[start:end]
        constant = symbol.value
        value = None
        if isinstance(constant.value, pyslang.SVInt) and not constant.hasUnknown():
            value = int(constant.value)
        parameters.append(Parameter(symbol.name, default, value, bool(symbol.isLocalParam)))
    return ModuleInterface(top.name, tuple(ports), tuple(parameters), edge_events(modules, top))


def parse(text: str, top: str | None = None, *, prefer_top: str | None = None) -> ParsedDesign:
    """Parse Verilog text: diagnostics, modules, the top module and its interface.

    Args:
        text: Verilog / SystemVerilog source, possibly with several modules (and a testbench).
        top: name of the top module; inferred when None (see this module's docstring).
        prefer_top: the top module when the text defines a module of this name, else the inferred one (a
            task's top, which a candidate may or may not have kept).

    Returns:
        A [`ParsedDesign`]. Syntax and elaboration problems are reported in `diagnostics`, not raised.

    Raises:
        VerilogInputError: the text is not usable Verilog at all: empty, NUL bytes, nested too deeply, no
            module, or `top` names no module of the text.
    """
    source = load_source(text)
    modules = module_syntax(source)
    chosen = choose_top(modules, top, prefer=prefer_top)
    options = pyast.CompilationOptions()
    options.topModules = {chosen.name}
    try:
        compilation = pyast.Compilation(pyslang.Bag([options]))
        compilation.addSyntaxTree(source.tree)
        instances = [inst for inst in compilation.getRoot().topInstances if inst.name == chosen.name]
        diagnostics = _diagnostics(source, compilation.getAllDiagnostics())
        if not instances:
            raise VerilogInputError(f"module {chosen.name!r} could not be elaborated")
        with deep_recursion():
            interface = _interface(source, instances[0].body, modules, chosen)
    except RuntimeError as error:
        raise VerilogInputError(f"Verilog text too deeply nested to elaborate {error}".strip()) from None
    return ParsedDesign(
        text=source.text,
        diagnostics=diagnostics,
        modules=[module.name for module in modules],
        top=chosen.name,
        interface=interface,
        warnings=list(source.warnings),
        source=source,
        syntax=modules,
    )


def module_spans(text: str) -> dict[str, ModuleSpan]:
    """Character spans of each module declaration of `text` and of its name token (first declaration wins)."""
    source = load_source(text)
    spans: dict[str, ModuleSpan] = {}
    for module in module_syntax(source):
        start, end = source.span(module.node)
        name_start, name_end = source.span(module.node.header.name)
        spans.setdefault(module.name, ModuleSpan(start, end, name_start, name_end))
    return spans


def rename_modules(
    text: str | ParsedDesign, mapping: dict[str, str], *, within: tuple[str, set[str]] | None = None
) -> str:
    """Rename modules: their declarations (and `endmodule : name` labels) and every instantiation of them.

    Only identifier tokens are touched, so text inside strings and comments stays as it is;
    names that come out of a macro expansion are left alone.

    Args:
        text: Verilog source, or a [`ParsedDesign`] (its parse is reused).
        mapping: old module name -> new name (new names must be valid identifiers).
        within: with a design, `(text, modules)` from [`ParsedDesign.design_only`]: rename in that text (same
            offsets as the design's), inside the declarations of those modules only (the others are blank).

    Returns:
        The text with the modules renamed; everything else byte for byte unchanged.
    """
    for new in mapping.values():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", new):
            raise VerilogInputError(f"not a valid module name: {new!r}")
    if isinstance(text, ParsedDesign):
        source, modules = text.source, text.syntax
        if within is not None and len(within[0]) != len(text.text):
            raise ValueError("`within` must be the design's text with parts blanked out (same offsets)")
        text, kept = within or (text.text, None)
        modules = [module for module in modules if kept is None or module.name in kept]
    elif within is not None:
        raise ValueError("`within` needs the ParsedDesign its text was blanked from")
    else:
        source = load_source(text)
        modules = module_syntax(source)
    manager = source.source_manager
    tokens: list[Token] = []
    for module in modules:
        tokens.append(module.node.header.name)
        block_name = getattr(module.node, "blockName", None)
        if block_name is not None:
            tokens.append(block_name.name)
        tokens += [node.type for node in module.instances if node.kind == Kind.HierarchyInstantiation]
    edits = []
    for token in tokens:
        if token.valueText in mapping and not token.isMissing and manager.isFileLoc(token.location):
            start, end = source.span(token)
            if text[start:end] == token.valueText:
                edits.append((start, end, mapping[token.valueText]))
    pieces, position = [], 0
    for start, end, new in sorted(set(edits)):
        pieces += [text[position:start], new]
        position = end
    return "".join(pieces) + text[position:]


_UNDECLARED = re.compile(r"use of undeclared identifier '([^']+)'")


def outside_reference(design: ParsedDesign, text: str | None = None) -> str | None:
    """The first name `design` reaches outside itself, or None (`text`: the design's text with parts blanked
    out that are not judged, offsets unchanged; default: the parsed text).

    A hierarchical name (`good1.y`, `tb.stats1`) or a call whose first name the design does not declare can
    only resolve upwards, into whatever instantiates the design: in a testbench, the reference beside it or
    the harness's counters. Icarus resolves such names at compile time; a design judged against a reference
    must not be able to.
    """
    lines = (design.text if text is None else text).splitlines()
    for diagnostic in design.errors:
        match = _UNDECLARED.fullmatch(diagnostic.message)
        if not match or not 0 < diagnostic.line <= len(lines):
            continue
        name, column = match.group(1), diagnostic.column - 1
        line = lines[diagnostic.line - 1]
        if line[column : column + len(name)] == name and re.match(r"\s*[.(]", line[column + len(name) :]):
            return f"{match.group(1)!r} (line {diagnostic.line}) is not declared in the design"
    return None
