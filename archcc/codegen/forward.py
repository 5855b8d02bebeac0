"""A module's forward graph -> lines of Python, reading like the spec that produced it.

Nodes of one spec statement that are read exactly once are inlined into their reader, so
``x = x + attn(ln_1(x))`` comes back as ``x = x + self.attn(self.ln_1(x))``; everything
else gets a name (the spec's own where it has one). A name is reused only when its old value
is dead, so the emitted code is always equivalent to the SSA graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archcc.codegen.render import ATOM, Rendered, render_op
from archcc.codegen.render_image import NAMED_INPUTS
from archcc.codegen.views_blocks import loop_header
from archcc.ir.graph import ModuleIR, program_order
from archcc.ir.params import symbol
from archcc.ir.shapes import fmt
from archcc.lazy import nx
from archcc.parser.expr import render_prec

NEVER_INLINE = {"input", "split", "getitem", "output", "positions", "pack_padded",
                "length_mask", "kv_cache", "rope_angles"}
# assigned to several names at once: ``k, v = ...``
MULTI_OUTPUT = {"split", "kv_cache", "rope_angles", "chunk", "topk"}
ALWAYS_INLINE = {"const", "get_attr"}


@dataclass
class Line:
    """One line of a forward body; ``indent`` is relative to the body."""

    code: str
    comment: str = ""
    indent: int = 0


class ForwardEmitter:
    """Emits the body of ``forward`` for one module."""

    def __init__(self, module: ModuleIR, resolve: Callable[[str], str]):
        self.module, self.g, self.resolve = module, module.graph, resolve
        self.order = program_order(self.g)
        self.rank = {n: i for i, n in enumerate(self.order)}
        self.names: dict[str, str] = {}  # node -> python name holding its value
        self.holder: dict[str, str] = {}  # python name -> node whose value it holds
        self.emitted: set[str] = set()
        self.lines: list[Line] = []
        self.display = {symbol(k): symbol(v) for k, v in module.display.items()}

    # --------------------------------------------------------------------------- policy
    def _inlined(self, node: str) -> bool:
        data = self.g.nodes[node]
        if data["op"] in ALWAYS_INLINE:
            return True
        readers = [r for r in self.g.successors(node) if self.g.nodes[r]["op"] != "stack_after"]
        if data["op"] in NEVER_INLINE or data["op"] in MULTI_OUTPUT or len(readers) != 1 \
                or data["stmt"] is None:
            return False
        if data["op"] == "call" and data["attrs"].get("repeat"):
            return False  # a repeat is a for loop, a statement of its own
        reader = self.g.nodes[readers[0]]
        if reader["op"] == "call" and reader["attrs"].get("repeat"):
            return False  # a loop's inputs must be names
        if reader["op"] in (*MULTI_OUTPUT, "prepend", *NAMED_INPUTS) or data["note"]:
            return False
        return reader["stmt"] == data["stmt"]

    # ------------------------------------------------------------------------ rendering
    def _expr(self, node: str) -> Rendered:
        if node in self.names:
            return self.names[node], ATOM
        data = self.g.nodes[node]
        self.emitted.add(node)
        if data["op"] in ("stack_push", "stack_after"):  # a version of a stack: the list
            return data["attrs"]["stack"], ATOM
        if data["op"] == "stack_pop":
            return f"{data['attrs']['stack']}.pop()", ATOM
        if data["op"] == "stack_new":
            return "[]", ATOM
        if data["op"] == "const":
            return render_prec(data["attrs"]["value"], self.resolve)
        if data["op"] == "get_attr":
            return f"self.{data['attrs']['target']}", ATOM
        args = [self._expr(i) for i in data["inputs"]]
        if data["op"] == "call":
            return self._call(data, args), ATOM
        dtypes = [self.g.nodes[i]["dtype"] for i in data["inputs"]]
        attrs = data["attrs"]
        if data["op"] == "port":  # where the value sits in the call's (nested) result
            attrs = {**attrs, "element": self._element(data)}
        return render_op(data["op"], attrs, args,
                         lambda e: render_prec(e, self.resolve)[0], dtypes)

    def _element(self, port: dict) -> tuple[int, ...]:
        """Indices of a port in its call's result: ``out, (h, c)`` is ``[0]``, ``[1][0]``,
        ``[1][1]`` (an LSTM's state is a pair), ``out, h`` is ``[0]``, ``[1]``."""
        call = self.g.nodes[port["inputs"][0]]
        index, ports = port["attrs"]["index"], call["attrs"]["ports"]
        return (0,) if index == 0 else (1,) if len(ports) == 2 else (1, index - 1)

    def _call(self, data: dict, args: list[Rendered]) -> str:
        if data["attrs"].get("memo"):  # cross attention's projection of the encoder memory
            memory, cache = (a[0] for a in args)
            return f"memoized({cache}, self.{data['attrs']['target']}, {memory})"
        kwargs = data["attrs"]["kwargs"]
        positional = [a[0] for a in args[:len(args) - len(kwargs)]]
        named = [f"{k}={a[0]}" for k, a in zip(kwargs, args[len(positional):], strict=True)]
        if data["attrs"].get("state_pair"):  # nn.LSTM takes its state as one (h0, c0) pair
            positional = [positional[0], f"({', '.join(positional[1:])})"]
        return f"self.{data['attrs']['target']}({', '.join(positional + named)})"

    def _comment(self, node: str) -> str:
        shape = self.g.nodes[node]["shape"]
        if shape is None or shape == () or self.g.nodes[node].get("vague"):
            return ""
        if self.display:
            shape = tuple(d.subs(self.display) for d in shape)
        return fmt(shape)

    # ------------------------------------------------------------------------- naming
    def _pending_readers(self, node: str) -> bool:
        return any(r not in self.emitted for r in self.g.successors(node))

    def _bind(self, node: str, preferred: str) -> str:
        name, n = preferred, 0
        while name in self.holder and self.holder[name] != node and \
                self._pending_readers(self.holder[name]):
            n += 1
            name = f"{preferred}_{n}"
        self.holder[name], self.names[node] = node, name
        return name

    def _var(self, node: str) -> str:
        data = self.g.nodes[node]
        return data["var"] or data["op"]

    # --------------------------------------------------------------------------- emit
    def emit(self) -> list[Line]:
        for node in self.module.inputs:
            self._bind(node, self.g.nodes[node]["attrs"]["name"])
            self.emitted.add(node)
        for node in self.order:
            if node in self.emitted or self._inlined(node):
                continue
            op = self.g.nodes[node]["op"]
            if op == "output":
                self._return(node)
            elif op == "stack_after":
                self.emitted.add(node)
            elif op == "stack_push":
                self._push(node)
            elif op in MULTI_OUTPUT:
                self._split(node)
            elif op == "call" and self.g.nodes[node]["attrs"].get("repeat"):
                self._loop(node)
            elif op == "call" and self.g.nodes[node]["attrs"].get("ports"):
                self._unpack(node)
            else:
                self._assign(node)
        return self.lines

    def _assign(self, node: str) -> None:
        note = self.g.nodes[node]["note"]
        text = self._expr(node)[0]
        self.emitted.add(node)
        name = self._bind(node, self._var(node))
        comment = self._comment(node)
        self.lines.append(Line(f"{name} = {text}", f"{comment} {note}" if note else comment))

    def _split(self, node: str) -> None:
        text = self._expr(node)[0]
        self.emitted.add(node)
        parts = sorted(self.g.successors(node), key=lambda n: self.g.nodes[n]["attrs"]["index"])
        # every part gets a place, `_` for one nobody reads (a dead q of a fused q|k|v)
        count = self.g.nodes[node]["attrs"].get("outputs") or _part_count(self.g.nodes[node])
        names = ["_"] * count if count else []
        for part in parts:
            self.emitted.add(part)
            name = self._bind(part, self._var(part))
            if count:
                names[self.g.nodes[part]["attrs"]["index"]] = name
            else:
                names.append(name)
        self.lines.append(Line(f"{', '.join(names)} = {text}", self._comment(parts[0])))

    def _unpack(self, node: str) -> None:
        """``out, (h, c) = self.lstm(x)``: one name per port read, ``_`` for the rest."""
        text = self._expr(node)[0]
        self.emitted.add(node)
        names = ["_"] * len(self.g.nodes[node]["attrs"]["ports"])
        comments = []
        for port in sorted(self.g.successors(node), key=self._port_index):
            self.emitted.add(port)
            names[self._port_index(port)] = self._bind(port, self._var(port))
            comments.append(self._comment(port))
        if len(names) == 3:  # an LSTM's state is a pair
            state = "_" if names[1:] == ["_", "_"] else f"({names[1]}, {names[2]})"
            names = [names[0], state]
        self.lines.append(Line(f"{', '.join(names)} = {text}", ", ".join(comments)))

    def _port_index(self, port: str) -> int:
        return self.g.nodes[port]["attrs"]["index"]

    def _loop(self, node: str) -> None:
        """``for block in self.h: x = block(x, ...)``, threading one name through the loop."""
        data = self.g.nodes[node]
        first, rest = data["inputs"][0], data["inputs"][1:]
        name = self.names.get(first)
        shared = any(r not in self.emitted and r != node for r in self.g.successors(first))
        if name is None or shared:  # start the loop from a fresh name
            text = self._expr(first)[0]
            self.emitted.add(first)
            name = self._bind(node, self._var(node))
            self.lines.append(Line(f"{name} = {text}", self._comment(first)))
        args = [name] + [self._expr(r)[0] for r in rest]
        self.emitted.add(node)
        self.holder[name], self.names[node] = node, name
        header, callee = loop_header(self.module.submodules[data["attrs"]["target"]],
                                     data["attrs"]["target"], self.resolve,
                                     {*self.holder, *args})
        self.lines.append(Line(header))
        self.lines.append(Line(f"{name} = {callee}({', '.join(args)})", self._comment(node), 1))

    def _push(self, node: str) -> None:
        """``push(skips, x)`` -> ``skips.append(x)``."""
        data = self.g.nodes[node]
        value = self._expr(data["inputs"][1])[0]
        self.emitted.update((node, data["inputs"][0]))
        self.lines.append(Line(f"{data['attrs']['stack']}.append({value})"))

    def _return(self, node: str) -> None:
        values = [self._expr(i)[0] for i in self.g.nodes[node]["inputs"]]
        self.lines.append(Line(f"return {', '.join(values)}"))


def emit_forward(module: ModuleIR, resolve: Callable[[str], str]) -> list[Line]:
    """Forward body lines of ``module``; ``resolve`` maps param/scalar names to Python."""
    if not nx.is_directed_acyclic_graph(module.graph):
        raise ValueError(f"{module.name}: forward graph has a cycle")
    return ForwardEmitter(module, resolve).emit()


def _part_count(data: dict) -> int | None:
    """How many tensors a multi-output node gives, from its shape (a tuple of shapes)."""
    shape = data.get("shape")
    if isinstance(shape, tuple) and shape and all(isinstance(s, tuple) for s in shape):
        return len(shape)
    return None
