"""Per-output backward dependency slices of a Verilog module, as character spans of its text.

```python
>>> from salv_trl.hdl.slicing import slice_signals
>>> text = '''module m(input a, b, clk, output y, output reg q);
...   wire t = a & b;
...   assign y = t;
...   always @(posedge clk) q <= a;
... endmodule'''
>>> slices = slice_signals(text)
>>> [text[s:e] for s, e in slices["y"].core_spans]
['wire t = a & b;\\n  assign y = t;']
>>> slices["q"].depends_on
('a', 'clk')

```

How a slice is computed. The module is cut into *units*: a leaf statement (one assignment, one task call) with
the names of its control skeleton (`always @(...)` events, `if` predicates, the expression and **all** labels
of the enclosing `case`, loop headers), a continuous assignment, a declaration, an instance, a function or
task.
Starting from the output, every unit that drives a needed name is kept and the names it reads become needed;
the declarations of every name a kept unit mentions are kept too. Instances are sliced through the child
module's ports: an output connection needs only the inputs that the child's own slice of that port reads,
and the child module itself is reduced to the union of the slices of the ports the parent needs.

Precision is by name: a bit or part select of a vector counts as the whole vector, and functions, tasks,
`` ` ``-macro expanded items, gates and instances of modules outside the text count as whole units. That
over-approximates (keeps more), never less, and the slice's `warnings` say where it happened.
[`SignalSlice.render`] gives a module with the same interface in which only the kept units remain: dropped
statements in a `begin ... end` list disappear, dropped branches of `if`/`case` become `;` (a `begin end`
in generate), so the skeleton stays intact and labels keep their meaning. Event, delay and `wait` controls
stay in a kept block (`@(posedge clk) ;`) so kept statements keep their timing; time consumed inside a dropped
task call or by a dropped intra-assignment delay (`a = #5 b;`) is not kept.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import cached_property

from pyslang import syntax as pysyntax
from pyslang.parsing import TokenKind

from .parse import (
    ModuleSyntax,
    ParsedDesign,
    choose_top,
    find_nodes,
    identifier_tokens,
    module_syntax,
    syntax_nodes,
)
from .source import Source, deep_recursion, load_source

__all__ = ["SignalSlice", "slice_signals"]

Kind = pysyntax.SyntaxKind
_ASSIGNMENTS = {getattr(Kind, name) for name in dir(Kind) if name.endswith("AssignmentExpression")} - {
    Kind.AssignmentPatternExpression
}
_COMPOUND_ASSIGNMENTS = _ASSIGNMENTS - {Kind.AssignmentExpression, Kind.NonblockingAssignmentExpression}
_INCREMENTS = {
    Kind.PostincrementExpression,
    Kind.PostdecrementExpression,
    Kind.UnaryPreincrementExpression,
    Kind.UnaryPredecrementExpression,
}
_PROCEDURAL = {
    Kind.AlwaysBlock,
    Kind.AlwaysCombBlock,
    Kind.AlwaysFFBlock,
    Kind.AlwaysLatchBlock,
    Kind.InitialBlock,
    Kind.FinalBlock,
}
_BLOCKS = {Kind.SequentialBlockStatement, Kind.ParallelBlockStatement}
_SINGLE_BODY = {
    Kind.TimingControlStatement,
    Kind.ForLoopStatement,
    Kind.LoopStatement,
    Kind.ForeverStatement,
    Kind.DoWhileStatement,
    Kind.WaitStatement,
    Kind.ForeachLoopStatement,
}
_CONTROL_FLOW = {
    Kind.DisableStatement,
    Kind.JumpStatement,
    Kind.ReturnStatement,
    Kind.DisableForkStatement,
    Kind.WaitForkStatement,
}
_DECLARATIONS = {
    Kind.DataDeclaration,
    Kind.NetDeclaration,
    Kind.ParameterDeclarationStatement,
    Kind.TypedefDeclaration,
    Kind.GenvarDeclaration,
    Kind.LocalVariableDeclaration,
    Kind.NetTypeDeclaration,
    Kind.ForwardTypedefDeclaration,
}
_GENERATE = {Kind.GenerateRegion, Kind.GenerateBlock, Kind.LoopGenerate, Kind.IfGenerate, Kind.CaseGenerate}
# System tasks that write their arguments.
_WRITING_SYSTEM_TASKS = {
    "$readmemh",
    "$readmemb",
    "$fscanf",
    "$sscanf",
    "$fread",
    "$fgets",
    "$value$plusargs",
}
# Gates whose first terminal is the only output; buf/not drive all terminals but the last.
_SINGLE_OUTPUT_GATES = {"and", "nand", "or", "nor", "xor", "xnor"}
_MULTI_OUTPUT_GATES = {"buf", "not"}


@dataclass
class SignalSlice:
    """The backward dependency slice of one output of a module.

    Args:
        output: the output port's name.
        core_spans: `[start, end)` character spans of what drives this output specifically: the kept
            statements with their control skeleton, continuous assignments, initialised declarations,
            instances, and the slices of the child modules they instantiate.
        spans: `core_spans` plus the shared interface: module header and port list, port and other used
            declarations, parameters, `endmodule`, and the `` `define `` directives used; sorted, disjoint.
        depends_on: the declared names (ports, signals, parameters, functions) the output depends on,
            transitively, the output itself excluded.
        warnings: where the slice over-approximates, and what was assumed to parse the text.
        text: the sliced text (all spans index into it).
        edits: `(start, end, replacement)` edits of `text` that give [`render`], sorted.
    """

    output: str
    core_spans: list[tuple[int, int]]
    spans: list[tuple[int, int]]
    depends_on: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)
    text: str = field(default="", repr=False)
    edits: tuple[tuple[int, int, str], ...] = field(default=(), repr=False)

    def render(self) -> str:
        """The text with everything outside the slice removed: a compilable module (plus the child modules it
        instantiates) with the same interface, in which only this output is driven."""
        pieces, position = [], 0
        for start, end, replacement in self.edits:
            pieces += [self.text[position:start], replacement]
            position = end
        return "".join(pieces) + self.text[position:]


@dataclass(eq=False)
class _Unit:
    """A piece of a module that is kept or dropped as a whole."""

    start: int
    end: int
    drives: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> names it then needs
    declares: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # every name mentioned: must stay declared when kept
    needs: frozenset[str] = frozenset()  # names needed as soon as it is kept
    always: bool = False  # kept in every slice (interface, opaque items)
    root: int | None = None  # `id` of its procedural block's element: kept when that block is
    warning: str | None = None
    instance_of: str | None = None
    child_ports: dict[str, frozenset[str]] = field(default_factory=dict)  # written name -> child output ports


@dataclass(eq=False)
class _Element:
    """A node of the render tree: a unit, or a container kept when any child is."""

    start: int
    end: int
    drop: str  # replacement text when dropped
    unit: _Unit | None = None
    children: list[_Element] = field(default_factory=list)
    core: bool = True  # counts as core (not shared interface) when kept


class _Module:
    """The units of one module, and closures over them."""

    def __init__(self, source: Source, module: ModuleSyntax, slicer: _Slicer):
        # The slicer answers the instances' questions while the units are built; it is not kept after, so
        # that no reference cycle holds a module (and its parse) until the garbage collector runs.
        self.source, self.slicer = source, slicer
        self.start, self.end = source.span(module.node)
        location = source.file_location
        self.identifiers = sorted(
            (location(token.location), token.valueText) for token in identifier_tokens(module.node)
        )
        self.offsets = [offset for offset, _ in self.identifiers]
        self.units: list[_Unit] = []
        self.elements: list[_Element] = []
        self.ports = dict(module.ports)
        # A task call may write any module signal its body mentions, so a call drives all of those names.
        self.tasks = {
            task.prototype.name.getLastToken().valueText: frozenset(self.ids_of(task))
            for task in (find_nodes(module.node, Kind.TaskDeclaration) if "task" in source.text else ())
            if task.prototype.name is not None
        }
        header_start, header_end = source.span(module.node.header)
        header = _Unit(
            header_start, header_end, names=frozenset(self.ids(header_start, header_end)), always=True
        )
        self.elements.append(self._add(_Element(header_start, header_end, "", header, core=False)))
        for member in module.node.members:
            self.elements.append(self._member(member, frozenset(), None, ""))
        self.drivers: dict[str, list[tuple[_Unit, frozenset[str]]]] = {}
        self.declarations: dict[str, list[_Unit]] = {}
        for unit in self.units:
            for name, uses in unit.drives.items():
                self.drivers.setdefault(name, []).append((unit, uses))
            for name in unit.declares:
                self.declarations.setdefault(name, []).append(unit)
        self.declared = set(self.ports).union(*(unit.declares for unit in self.units))
        del self.slicer

    # ---- identifiers -------------------------------------------------------------------------------------
    def ids(self, start: int, end: int) -> list[str]:
        """Names of the identifier tokens in `[start, end)`."""
        return [
            name
            for _, name in self.identifiers[bisect_left(self.offsets, start) : bisect_left(self.offsets, end)]
        ]

    def ids_of(self, node) -> list[str]:
        return self.ids(*self.source.span(node)) if node is not None else []

    def _header_ids(self, node, bodies: list) -> frozenset[str]:
        """Names in `node` outside its body statements: conditions, labels, events, loop headers."""
        start, end = self.source.span(node)
        names, position = [], start
        for body in sorted(self.source.span(b) for b in bodies if b is not None):
            names += self.ids(position, body[0])
            position = max(position, body[1])
        return frozenset(names + self.ids(position, end))

    def _lvalue(self, node) -> tuple[list[str], list[tuple[int, str]]]:
        """Base names written by an lvalue, and the identifier tokens (offset, name) that are those bases."""
        if node.kind == Kind.ConcatenationExpression:
            bases, tokens = [], []
            for element in syntax_nodes(node.expressions):
                more_bases, more_tokens = self._lvalue(element)
                bases += more_bases
                tokens += more_tokens
            return bases, tokens
        if node.kind == Kind.ParenthesizedExpression:
            return self._lvalue(node.expression)
        start, end = self.source.span(node)
        index = bisect_left(self.offsets, start)
        if index < len(self.identifiers) and self.identifiers[index][0] < end:
            return [self.identifiers[index][1]], [self.identifiers[index]]
        return [], []

    def _uses_without(self, start: int, end: int, written: list[tuple[int, str]]) -> frozenset[str]:
        remaining = list(written)
        uses = []
        for token in self.identifiers[bisect_left(self.offsets, start) : bisect_left(self.offsets, end)]:
            if token in remaining:
                remaining.remove(token)
            else:
                uses.append(token[1])
        return frozenset(uses)

    # ---- the render tree ---------------------------------------------------------------------------------
    def _add(self, element: _Element) -> _Element:
        if element.unit is not None:
            self.units.append(element.unit)
        return element

    def _from_macro(self, node) -> bool:
        if not self.source.macros:
            return False
        manager = self.source.source_manager
        return manager.isMacroLoc(node.getFirstToken().location) or manager.isMacroLoc(
            node.getLastToken().location
        )

    def _opaque(self, node, drop: str, why: str) -> _Element:
        start, end = self.source.span(node)
        names = frozenset(self.ids(start, end))
        unit = _Unit(start, end, names=names, needs=names, always=True, warning=why)
        return self._add(_Element(start, end, drop, unit))

    def _driver(
        self, span: tuple[int, int], defs: list[str], uses: frozenset[str], drop: str, root: int | None = None
    ) -> _Element:
        start, end = span
        unit = _Unit(start, end, drives=dict.fromkeys(defs, uses), names=frozenset(defs) | uses, root=root)
        return self._add(_Element(start, end, drop, unit))

    def _member(self, node, context: frozenset[str], root: int | None, drop: str) -> _Element:
        """A module or generate item."""
        kind = node.kind
        start, end = self.source.span(node)
        if self._from_macro(node):
            return self._opaque(node, drop, f"kept the macro-expanded item at {self._where(start)} whole")
        if kind == Kind.PortDeclaration:
            unit = _Unit(start, end, names=frozenset(self.ids(start, end)), always=True)
            return self._add(_Element(start, end, drop, unit, core=False))
        if kind in _DECLARATIONS:
            return self._declaration(node, context, drop)
        if kind == Kind.ContinuousAssign:
            written: list[tuple[int, str]] = []
            bases: list[str] = []
            for assignment in syntax_nodes(node.assignments):
                if assignment.kind in _ASSIGNMENTS:
                    more_bases, tokens = self._lvalue(assignment.left)
                    bases += more_bases
                    written += tokens
            return self._driver((start, end), bases, self._uses_without(start, end, written) | context, drop)
        if kind in _PROCEDURAL:
            element = _Element(start, end, drop)
            element.children.append(self._statement(node.statement, context, id(element), ";"))
            return element
        if kind in (Kind.FunctionDeclaration, Kind.TaskDeclaration):
            names = (
                self.ids(*self.source.span(node.prototype.name)) if node.prototype.name is not None else []
            )
            everything = frozenset(self.ids(start, end))
            unit = _Unit(
                start,
                end,
                drives=dict.fromkeys(names[-1:], everything),
                declares=frozenset(names[-1:]),
                names=everything,
            )
            return self._add(_Element(start, end, drop, unit))
        if kind == Kind.HierarchyInstantiation:
            return self._add(_Element(start, end, drop, self._instance(node, context)))
        if kind == Kind.PrimitiveInstantiation:
            return self._add(_Element(start, end, drop, self._gate(node, context)))
        if kind in _GENERATE:
            return self._generate(node, context, root, drop)
        if kind == Kind.EmptyMember:  # a stray `;`
            return _Element(start, end, drop)
        if kind == Kind.TimeUnitsDeclaration:  # `timeunit`: shared by every slice, not an approximation
            unit = _Unit(start, end, always=True)
            return self._add(_Element(start, end, drop, unit, core=False))
        return self._opaque(node, drop, f"kept the {kind.name} at {self._where(start)} in every slice")

    def _where(self, offset: int) -> str:
        return f"line {self.source.text.count(chr(10), 0, offset) + 1}"

    def _declaration(self, node, context: frozenset[str], drop: str) -> _Element:
        start, end = self.source.span(node)
        kind = node.kind
        if kind == Kind.ParameterDeclarationStatement:
            declarators = syntax_nodes(node.parameter.declarators)
        elif hasattr(node, "declarators"):
            declarators = syntax_nodes(node.declarators)
        else:
            declarators = []
        if declarators:
            name_tokens = [(self.source.span(d.name)[0], d.name.valueText) for d in declarators]
        elif kind == Kind.GenvarDeclaration:
            name_tokens = [
                (self.source.span(i)[0], i.identifier.valueText) for i in syntax_nodes(node.identifiers)
            ]
        elif getattr(node, "name", None) is not None:  # typedefs
            name_tokens = [(self.source.span(node.name)[0], node.name.valueText)]
        else:  # error recovery: a declaration without names
            name_tokens = []
        declared = [name for _, name in name_tokens]
        uses = self._uses_without(start, end, name_tokens) | context
        initialised = [d.name.valueText for d in declarators if getattr(d, "initializer", None) is not None]
        if kind == Kind.ParameterDeclarationStatement:
            initialised = []  # parameters are constants: declaring them is enough
            if (
                node.parameter.keyword.kind == TokenKind.ParameterKeyword
            ):  # overridable: part of the interface
                unit = _Unit(
                    start, end, declares=frozenset(declared), names=frozenset(declared) | uses, always=True
                )
                return self._add(_Element(start, end, drop, unit, core=False))
        unit = _Unit(
            start,
            end,
            drives=dict.fromkeys(initialised, uses),
            declares=frozenset(declared),
            names=frozenset(declared) | uses,
        )
        return self._add(_Element(start, end, drop, unit, core=bool(initialised)))

    def _generate(self, node, context: frozenset[str], root, drop: str) -> _Element:
        kind = node.kind
        start, end = self.source.span(node)
        element = _Element(start, end, drop)
        if kind in (Kind.GenerateRegion, Kind.GenerateBlock):
            for member in node.members:
                element.children.append(self._member(member, context, root, ""))
            return element
        if kind == Kind.LoopGenerate:
            bodies = [(node.block, "begin end")]
        elif kind == Kind.IfGenerate:
            bodies = [(node.block, "begin end")]
            if node.elseClause is not None:
                bodies.append((node.elseClause.clause, "begin end"))
        else:
            bodies = [(item.clause, "begin end") for item in syntax_nodes(node.items)]
        inner = context | self._header_ids(node, [body for body, _ in bodies])
        for body, body_drop in bodies:
            element.children.append(self._member(body, inner, root, body_drop))
        return element

    def _statement(self, node, context: frozenset[str], root: int, drop: str) -> _Element:
        """A procedural statement: a container of statements, or a leaf unit that uses `context` too."""
        kind = node.kind
        start, end = self.source.span(node)
        if self._from_macro(node):
            return self._opaque(
                node, drop, f"kept the macro-expanded statement at {self._where(start)} whole"
            )
        if kind in _BLOCKS:
            element = _Element(start, end, drop)
            for item in node.items:
                if item.kind in _DECLARATIONS:
                    element.children.append(self._declaration(item, context, ""))
                else:
                    element.children.append(self._statement(item, context, root, ""))
            return element
        bodies = []
        if kind == Kind.ConditionalStatement:
            bodies = [node.statement] + ([node.elseClause.clause] if node.elseClause is not None else [])
        elif kind == Kind.CaseStatement:
            bodies = [item.clause for item in syntax_nodes(node.items) if hasattr(item, "clause")]
        elif kind in _SINGLE_BODY and node.statement is not None:
            bodies = [node.statement]
        if bodies:
            inner = context | self._header_ids(node, bodies)
            element = _Element(start, end, drop)
            if kind in (Kind.TimingControlStatement, Kind.WaitStatement):
                # `@(...)`, `#d` and `wait` delay what follows them in their block, so they stay (as
                # `@(...) ;`) whenever their procedural block is kept, even when their statement is dropped.
                control_end = self.source.span(node.statement)[0]
                names = frozenset(self.ids(start, control_end)) | context
                unit = _Unit(start, control_end, names=names, needs=names, root=root)
                element.children.append(self._add(_Element(start, control_end, "", unit)))
            element.children += [self._statement(body, inner, root, ";") for body in bodies]
            return element
        if kind == Kind.EmptyStatement:
            return _Element(start, end, drop)
        if kind in _CONTROL_FLOW:
            names = frozenset(self.ids(start, end)) | context
            unit = _Unit(start, end, names=names, needs=names, root=root)
            return self._add(_Element(start, end, drop, unit))
        expression = getattr(node, "expr", None)
        if kind == Kind.ExpressionStatement and expression is not None:
            if expression.kind in _ASSIGNMENTS:
                bases, written = self._lvalue(expression.left)
                if expression.kind in _COMPOUND_ASSIGNMENTS:
                    written = []  # `x += y` reads x
                return self._driver(
                    (start, end), bases, self._uses_without(start, end, written) | context, drop, root
                )
            if expression.kind in _INCREMENTS:
                bases, _ = self._lvalue(expression.operand)
                uses = frozenset(self.ids(start, end)) | context
                return self._driver((start, end), bases, uses, drop, root)
            if expression.kind == Kind.InvocationExpression:
                callee = expression.left.getFirstToken()
                if (
                    callee.kind == TokenKind.SystemIdentifier
                    and callee.valueText not in _WRITING_SYSTEM_TASKS
                ):
                    return _Element(start, end, drop)  # $display and friends drive nothing
        if (
            kind in (Kind.ProceduralAssignStatement, Kind.ProceduralForceStatement)
            and expression is not None
            and expression.kind in _ASSIGNMENTS
        ):
            bases, written = self._lvalue(expression.left)
            uses = self._uses_without(start, end, written) | context
            return self._driver((start, end), bases, uses, drop, root)
        # Task calls, writing system tasks and anything else: every name may be written and read.
        names = list(self.ids(start, end))
        names += [written for name in names if name in self.tasks for written in self.tasks[name]]
        return self._driver((start, end), names, frozenset(names) | context, drop, root)

    # ---- instances ---------------------------------------------------------------------------------------
    def _instance(self, node, context: frozenset[str]) -> _Unit:
        start, end = self.source.span(node)
        name = node.type.valueText
        child = self.slicer.syntax.get(name)
        parameters: frozenset[str] = frozenset()
        if node.parameters is not None:  # in `.W(N)` only N is ours: W names the child's parameter
            for assignment in syntax_nodes(node.parameters.parameters):
                if getattr(assignment, "expr", None) is not None:
                    parameters |= frozenset(self.ids_of(assignment.expr))
        dependencies = self.slicer.port_dependencies(name)
        drives: dict[str, set[str]] = {}
        written_ports: dict[str, set[str]] = {}
        names: set[str] = set(parameters)
        warning = None
        for instance in syntax_nodes(node.instances):
            connections: dict[str, tuple[list[str], frozenset[str]]] = {}  # port -> (written bases, names)
            dimension_ids = frozenset(self.ids_of(instance.decl)) - (
                {instance.decl.name.valueText} if instance.decl is not None else set()
            )
            child_ports = [port for port, _ in child.ports] if child is not None else []
            for index, connection in enumerate(syntax_nodes(instance.connections)):
                if connection.kind == Kind.WildcardPortConnection:
                    for port in child_ports:  # `.*` connects each port to the signal of the same name
                        connections.setdefault(port, ([port], frozenset([port])))
                    continue
                if connection.kind == Kind.NamedPortConnection:
                    port, expression = connection.name.valueText, connection.expr
                    if expression is None and connection.openParen.isMissing:  # `.a` is `.a(a)`
                        connections[port] = ([port], frozenset([port]))
                        continue
                else:
                    port = child_ports[index] if index < len(child_ports) else f"#{index}"
                    expression = getattr(connection, "expr", None)  # `u(a, , b)`: an empty connection
                if expression is not None:
                    connections[port] = (self._lvalue(expression)[0], frozenset(self.ids_of(expression)))
            every_name = frozenset().union(*(ids for _, ids in connections.values()))
            names |= every_name
            for port, (bases, ids) in connections.items():
                if dependencies is None or port not in dependencies:
                    reads = every_name  # unknown port: it may read anything connected
                else:
                    direction, inputs = dependencies[port]
                    if direction == "input":
                        continue
                    reads = frozenset().union(*(connections[p][1] for p in inputs if p in connections))
                    reads |= ids - set(bases)  # index expressions of the output connection
                for base in bases:
                    drives.setdefault(base, set()).update(reads | parameters | dimension_ids | context)
                    written_ports.setdefault(base, set()).add(port)
        if dependencies is None:
            warning = (
                f"instance of {name} at {self._where(start)}: module not in the text (or recursive), "
                "every connection treated as both read and written"
            )
        return _Unit(
            start,
            end,
            drives={k: frozenset(v) for k, v in drives.items()},
            names=frozenset(names),
            needs=parameters | context,
            warning=warning,
            instance_of=name,
            child_ports={base: frozenset(ports) for base, ports in written_ports.items()},
        )

    def _gate(self, node, context: frozenset[str]) -> _Unit:
        start, end = self.source.span(node)
        gate = node.type.valueText
        drives: dict[str, frozenset[str]] = {}
        names: set[str] = set()
        for instance in syntax_nodes(node.instances):
            terminals = [
                self.ids_of(c.expr)
                for c in syntax_nodes(instance.connections)
                if getattr(c, "expr", None) is not None
            ]
            if gate in _SINGLE_OUTPUT_GATES:
                outputs = terminals[:1]
            elif gate in _MULTI_OUTPUT_GATES:
                outputs = terminals[:-1]
            else:
                outputs = terminals
            reads = frozenset(name for terminal in terminals for name in terminal) | context
            for terminal in outputs:
                for name in terminal[:1]:
                    drives[name] = drives.get(name, frozenset()) | reads
            names |= reads
        return _Unit(start, end, drives=drives, names=frozenset(names), needs=frozenset(context))

    # ---- closure -----------------------------------------------------------------------------------------
    def closure(self, output: str) -> tuple[set[_Unit], set[str]]:
        """The units kept for `output`, and the names it needs."""
        kept, needed, referenced = (set(part) for part in self._common)
        to_need, to_keep = [output], []
        while True:
            self._grow(kept, needed, referenced, to_need, [], to_keep)
            if not self._sticky:
                return kept, needed
            roots = self.kept_elements(kept)
            to_need, to_keep = [], [u for u in self._sticky if u not in kept and u.root in roots]
            if not to_keep:
                return kept, needed

    @cached_property
    def _common(self) -> tuple[frozenset[_Unit], frozenset[str], frozenset[str]]:
        """Kept units, needed and referenced names that every slice has: those the interface (the units kept
        in every slice, the ports) brings. A slice grows from them: closing over the output alone afterwards
        gives the same sets as closing over everything at once (each step only adds)."""
        kept: set[_Unit] = set()
        needed: set[str] = set()
        referenced: set[str] = set()
        self._grow(kept, needed, referenced, [], list(self.ports), [u for u in self.units if u.always])
        return frozenset(kept), frozenset(needed), frozenset(referenced)

    def _grow(
        self,
        kept: set[_Unit],
        needed: set[str],
        referenced: set[str],
        to_need: list[str],
        to_reference: list[str],
        to_keep: list[_Unit],
    ) -> None:
        """Close `kept`, `needed` and `referenced` (in place) over what the pending items bring."""
        while to_need or to_reference or to_keep:
            if to_keep:
                unit = to_keep.pop()
                if unit not in kept:
                    kept.add(unit)
                    to_reference += unit.names
                    to_need += unit.needs
            elif to_need:
                name = to_need.pop()
                if name not in needed:
                    needed.add(name)
                    to_reference.append(name)
                    # an input port's value comes from outside, whatever seems to write it inside
                    for unit, uses in () if self.ports.get(name) == "input" else self.drivers.get(name, ()):
                        to_keep.append(unit)
                        to_need += uses
            else:
                name = to_reference.pop()
                if name not in referenced:
                    referenced.add(name)
                    to_keep += self.declarations.get(name, ())

    @cached_property
    def _sticky(self) -> list[_Unit]:
        """The units that drive nothing but are kept with their procedural block (timing and control flow)."""
        return [unit for unit in self.units if unit.root is not None and not unit.drives]

    @cached_property
    def _children_first(self) -> list[_Element]:
        """Every element, children before their parents (the render tree is fixed once built)."""
        order, stack = [], list(self.elements)
        while stack:  # iterative pre-order: nesting can be ~1024 deep
            element = stack.pop()
            order.append(element)
            stack += element.children
        return order[::-1]

    @cached_property
    def _containers(self) -> dict[int, int]:
        """`id` of each element of the render tree -> `id` of its container (top level: none)."""
        return {id(child): id(element) for element in self._children_first for child in element.children}

    @cached_property
    def _unit_elements(self) -> dict[_Unit, int]:
        """Each unit of the render tree -> `id` of its element."""
        return {element.unit: id(element) for element in self._children_first if element.unit is not None}

    def kept_elements(self, kept: set[_Unit]) -> set[int]:
        """`id`s of the kept elements: a unit's when the unit is kept, a container's when any child is."""
        common = self._common[0]
        if common <= kept:  # always, in a slice: start from the elements every slice keeps
            return self._mark(kept - common, set(self._common_elements))
        return self._mark(kept, set())

    @cached_property
    def _common_elements(self) -> frozenset[int]:
        """`id`s of the elements every slice keeps."""
        return frozenset(self._mark(self._common[0], set()))

    def _mark(self, units: set[_Unit], marked: set[int]) -> set[int]:
        """`marked` with the elements of `units` and their containers added."""
        for unit in units:
            element = self._unit_elements.get(unit)
            while element is not None and element not in marked:  # its containers, up to a marked one
                marked.add(element)
                element = self._containers.get(element)
        return marked

    def edits(self, kept: set[_Unit]) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
        """Edits that drop what is not kept, and the spans of the kept core elements (before edits)."""
        edits: list[tuple[int, int, str]] = []
        core: list[tuple[int, int]] = []
        kept_elements = self.kept_elements(kept)
        stack = [(element, True) for element in reversed(self.elements)]
        while stack:
            element, top_level = stack.pop()
            if id(element) not in kept_elements:
                edits.append(self._drop(element))
                continue
            if top_level and element.core:
                core.append((element.start, element.end))
            stack += [(child, False) for child in reversed(element.children)]
        return edits, core

    def _drop(self, element: _Element) -> tuple[int, int, str]:
        """The edit that drops an element: its replacement, or its removal."""
        if element.drop:
            return element.start, element.end, element.drop
        return _removal(self.source.text, element.start, element.end)

    def warnings(self, kept: set[_Unit]) -> list[str]:
        return [unit.warning for unit in self.units if unit in kept and unit.warning]


class _Slicer:
    """All modules of a text, sliced lazily; child modules are sliced when an instance needs their ports."""

    def __init__(self, source: Source, modules: list[ModuleSyntax] | None = None):
        self.source = source
        self.syntax = {}
        for module in module_syntax(source) if modules is None else modules:
            self.syntax.setdefault(module.name, module)
        self.modules: dict[str, _Module] = {}
        self.building: set[str] = set()  # modules whose units are being built (recursive instantiation)
        self.dependencies: dict[str, dict[str, tuple[str, frozenset[str]]] | None] = {}

    def module(self, name: str) -> _Module | None:
        if name not in self.syntax:
            return None
        if name not in self.modules:
            self.building.add(name)
            self.modules[name] = _Module(self.source, self.syntax[name], self)
            self.building.discard(name)
        return self.modules[name]

    def port_dependencies(self, name: str) -> dict[str, tuple[str, frozenset[str]]] | None:
        """Child port -> (direction, the child's input ports that an output port depends on).

        None when unknown: a module outside the text, or one instantiated recursively."""
        if name in self.dependencies or name in self.building:
            return self.dependencies.get(name)
        self.dependencies[name] = None  # recursion guard
        module = self.module(name)
        if module is None:
            return None
        inputs = {port for port, direction in module.ports.items() if direction in ("input", "inout")}
        result = {}
        for port, direction in module.ports.items():
            if direction == "input":
                result[port] = (direction, frozenset())
            elif direction == "inout":
                result[port] = (direction, frozenset(inputs))
            else:
                result[port] = (direction, frozenset(module.closure(port)[1] & inputs))
        self.dependencies[name] = result
        return result


def _subtract(
    spans: list[tuple[int, int]], edits: list[tuple[int, int, str]], text: str
) -> list[tuple[int, int]]:
    """`spans` minus the edited ranges, merged, with surrounding whitespace trimmed."""
    result: list[tuple[int, int]] = []
    cuts = sorted((start, end) for start, end, _ in edits)
    for start, end in sorted(spans):
        position = start
        for cut_start, cut_end in cuts:
            if cut_end <= position or cut_start >= end:
                continue
            if cut_start > position:
                result.append((position, cut_start))
            position = max(position, cut_end)
        if position < end:
            result.append((position, end))
    trimmed = []
    for start, end in result:
        piece = text[start:end]
        start, end = start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))
        if start < end:
            if trimmed and (trimmed[-1][1] >= start or not text[trimmed[-1][1] : start].strip()):
                trimmed[-1] = (trimmed[-1][0], max(end, trimmed[-1][1]))
            else:
                trimmed.append((start, end))
    return trimmed


def slice_signals(text: str | ParsedDesign, top: str | None = None) -> dict[str, SignalSlice]:
    """Compute the backward dependency slice of every output of the top module.

    Args:
        text: Verilog source; may hold several modules (submodules are sliced through, others left out). Or a
            [`~salv_trl.hdl.parse.ParsedDesign`]: its parse is reused and its top sliced.
        top: the module to slice; inferred like [`salv_trl.hdl.parse.parse`] does when None.

    Returns:
        Output port name -> [`SignalSlice`], in port order (inout ports included).

    Raises:
        VerilogInputError: the text is not usable Verilog (see [`salv_trl.hdl.source.load_source`]).
    """
    if isinstance(text, ParsedDesign):
        source, top, modules = text.source, top or text.top, text.syntax
    else:
        source, modules = load_source(text), None
    with deep_recursion():
        return _slice_all(source, top, modules)


def _slice_all(
    source: Source, top: str | None, modules: list[ModuleSyntax] | None = None
) -> dict[str, SignalSlice]:
    text = source.text
    slicer = _Slicer(source, modules)
    chosen = choose_top(list(slicer.syntax.values()), top)
    module = slicer.module(chosen.name)
    assert module is not None
    common_warnings = list(source.warnings)
    if any(diagnostic.isError() for diagnostic in source.tree.diagnostics):
        common_warnings.append("the text has syntax errors: the slices are best effort")
    slices = {}
    for output, direction in chosen.ports:
        if direction not in ("output", "inout"):
            continue
        kept, needed = module.closure(output)
        edits, core = module.edits(kept)
        children = _child_slices(slicer, kept, needed)
        child_spans, warnings = [], module.warnings(kept)
        for name, child_kept in children.items():
            child = slicer.modules.get(name)
            start, end = source.span(slicer.syntax[name].node)
            if child_kept is None or child is None:  # kept whole
                child_spans.append((start, end))
                continue
            child_edits, _ = child.edits(child_kept)
            edits += child_edits
            child_spans += _subtract([(start, end)], child_edits, text)
            warnings += child.warnings(child_kept)
        module_edits = [
            _removal(text, *source.span(syntax.node))
            for name, syntax in slicer.syntax.items()
            if name != chosen.name and name not in children
        ]
        all_edits = sorted(edits + module_edits)
        kept_spans = _subtract([(module.start, module.end)] + child_spans, edits, text)
        slices[output] = SignalSlice(
            output=output,
            core_spans=_subtract(core + child_spans, edits, text),
            spans=_subtract(kept_spans + _used_macros(text, kept_spans), [], text),
            depends_on=tuple(sorted((needed - {output}) & module.declared)),
            warnings=common_warnings
            + list(dict.fromkeys(warnings))
            + ([] if output in module.drivers else [f"output {output} is never driven in {chosen.name}"]),
            text=text,
            edits=tuple(all_edits),
        )
    return slices


_DEFINE = re.compile(r"^[ \t]*(`define[ \t]+(\w+)(?:\\\n|[^\n])*)", re.MULTILINE)


def _used_macros(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of the `` `define `` directives whose macros the text in `spans` uses, directly or through other
    macros."""
    if "`define" not in text:
        return []
    defines = [(match.group(2), match.span(1)) for match in _DEFINE.finditer(text)]
    used = " ".join(text[start:end] for start, end in spans)
    found: list[tuple[int, int]] = []
    grew = True
    while grew:
        grew = False
        for name, span in defines:
            if span not in found and re.search(rf"`{re.escape(name)}\b", used):
                found.append(span)
                used += " " + text[span[0] : span[1]]
                grew = True
    return found


def _child_slices(slicer: _Slicer, kept: set[_Unit], needed: set[str]) -> dict[str, set[_Unit] | None]:
    """The kept units of each module of the text that the slice instantiates, transitively: the union of the
    slices of the child output ports whose connections are needed. None: kept whole (recursive modules)."""
    wanted: dict[str, set[str]] = {}
    result: dict[str, set[_Unit] | None] = {}
    pending = [(kept, needed)]
    while pending:
        parent_kept, parent_needed = pending.pop()
        for unit in parent_kept:
            name = unit.instance_of
            if name not in slicer.syntax:
                continue
            ports = {
                port for base in unit.child_ports if base in parent_needed for port in unit.child_ports[base]
            }
            if name in result and (result[name] is None or ports <= wanted[name]):
                continue
            wanted[name] = wanted.get(name, set()) | ports
            child = slicer.module(name)
            assert child is not None  # the name is a module of the text
            if slicer.port_dependencies(name) is None:  # instantiated recursively: kept whole
                result[name] = None
                pending.append((set(child.units), set(child.declared)))
                continue
            child_kept: set[_Unit] = set()
            child_needed: set[str] = set()
            for port in sorted(wanted[name]):
                port_kept, port_needed = child.closure(port)
                child_kept |= port_kept
                child_needed |= port_needed
            result[name] = child_kept
            pending.append((child_kept, child_needed))
    return result


def _removal(text: str, start: int, end: int) -> tuple[int, int, str]:
    """The edit that removes `[start, end)`; a line left blank disappears with its indentation and newline."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if not text[line_start:start].strip() and not text[end:line_end].strip():
        return line_start, min(line_end + 1, len(text)), ""
    return start, end, ""
