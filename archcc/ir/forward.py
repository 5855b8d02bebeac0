"""Forward wiring -> nodes: interprets one block's (or the model's) forward program.

Every statement of a forward program becomes a handful of nodes tagged with the statement's
number, so codegen can print the user's line back almost verbatim::

    x = x + attn(ln_1(x))   ->  %ln_1 = call(%x, target=ln_1)
                                %attn = call(%ln_1, target=attn)
                                %x    = add(%x, %attn)            (all stmt=1)

Problems are collected, not raised one by one: a run reports every undefined name at once,
and a statement that failed does not cause follow-on errors where its result is used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from archcc import ops
from archcc.diagnostics import Diagnostic
from archcc.ir import forward_seq, forward_stack, tensor_functions
from archcc.ir.dtypes import BOOL, INT
from archcc.ir.forward_attention import ATTENTION_BUILTINS, SPECIAL
from archcc.ir.graph import ModuleIR, add_node
from archcc.ir.layers import Layer
from archcc.ir.params import ParamScope
from archcc.ir.shapes import FLOAT
from archcc.parser.expr import (
    COMPARISONS,
    ELLIPSIS,
    Assign,
    BinOp,
    Call,
    Effect,
    Expr,
    ExprError,
    ExprSyntaxError,
    ListExpr,
    Name,
    Neg,
    Num,
    Pos,
    Return,
    Slice,
    Subscript,
    did_you_mean,
    parse_program,
    python_type,
)
from archcc.parser.schema import HINT_MARK, check_identifier
from archcc.parser.yaml_loader import SpecPath


class ClassBinder(Protocol):
    """Attaches the lowered class a layer's call needs (see build._Classes)."""

    def bind(self, layer: Layer, kwargs: tuple) -> None: ...


# forward-language functions that are not layers: name -> (IR op, positional arity)
BUILTINS = {"relu": ("relu", 1), "gelu": ("gelu", 1), "gelu_tanh": ("gelu_tanh", 1),
            "silu": ("silu", 1), "tanh": ("tanh", 1), "sigmoid": ("sigmoid", 1),
            "softmax": ("softmax", 1), "matmul": ("matmul", 2), "transpose": ("transpose", 3),
            "positions": ("positions", 1), "prepend": ("prepend", 2),
            "flatten": ("flatten", 1),
            # image and two-tower models: CLIP pooling and similarity (cat: forward_seq.py)
            "quick_gelu": ("quick_gelu", 1), "exp": ("exp", 1), "normalize": ("normalize", 1),
            "argmax": ("argmax", 1), "token_at": ("token_at", 2),
            **ATTENTION_BUILTINS}  # masked_fill, where, dropout, causal_mask, ...
_BUILTIN_DEFAULTS = {"softmax": {"dim": -1}, "flatten": {"start": 1, "end": -1},
                     "normalize": {"dim": -1}, "argmax": {"dim": -1}}
# optional keywords whose value stays a param expression (rendered as config.<name>):
# positions(ids, offset=2) is BART's learned-position offset, positions(ids, pad=pad_token_id)
# RoBERTa's numbering that starts after the pad id and skips pads
_BUILTIN_EXPR_KEYWORDS = {"positions": ("offset", "pad")}


class ForwardInterpreter:
    """Interprets one forward program into the graph of one block or the model."""

    def __init__(self, scope: ParamScope, module: ModuleIR, path: SpecPath,
                 layers: dict[str, Layer], classes: ClassBinder, broken: set[str],
                 blocks: dict[str, ModuleIR] | None = None):
        self.scope, self.module, self.path = scope, module, path
        self.blocks = blocks or {}  # generated blocks built so far (a callee's stack inputs)
        self.stacks: set[str] = set()  # variables holding a stack (skips = stack(), inputs)
        self.broken = broken  # layers whose declaration failed: already reported
        self.g, self.layers, self.classes = module.graph, layers, classes
        self.vars: dict[str, str] = {}
        self.later: dict[str, Pos] = {}  # names some statement assigns, for better errors
        self.stmt = 0
        self.errors: list[Diagnostic] = []

    # -------------------------------------------------------------------------- driver
    def run(self, text: str, inputs: list[str]) -> None:
        for name in inputs:
            node = add_node(self.g, "input", var=name, name=name)
            self.g.graph["inputs"].append(node)
            self.vars[name] = node
        try:
            program = parse_program(text)
        except ExprSyntaxError as exc:
            self.errors.append(Diagnostic(self._loc(exc.pos), self._where(), exc.message,
                                          exc.hint))
            return
        result, return_stmt = None, None
        self.later = {t: s.pos for s in program if isinstance(s, Assign) for t in s.targets}
        for statement in program:
            self.stmt += 1
            try:
                result = self._statement(statement)
            except _Abort:
                result = None
                if isinstance(statement, Assign):  # later uses are already explained
                    self.broken.update(statement.targets)
                    for target in statement.targets:
                        self.vars.pop(target, None)
            if isinstance(statement, Return):
                return_stmt = self.stmt
                self._after_return(program, statement)
                break
        if result is None and program and not isinstance(program[-1], Return) and \
                isinstance(program[-1], Assign):
            result = [self.vars.get(program[-1].targets[-1])]
        if not program:
            self.errors.append(Diagnostic(self._loc(Pos()), self._where(), "forward is empty"))
        if result and all(result):
            # a `return` line's nodes may be inlined into it; a bare last name is returned
            self.g.graph["output"] = add_node(self.g, "output", result, stmt=return_stmt)
        self.module.stack_inputs = [n for n in inputs if n in self.stacks]

    def _after_return(self, program: list, ret: Return) -> None:
        rest = program[program.index(ret) + 1:]
        if rest:
            self.errors.append(Diagnostic(self._loc(rest[0].pos), self._where(),
                                          "statement after return is never run",
                                          "move it above the return, or delete it"))

    def _statement(self, statement) -> list[str] | None:
        if isinstance(statement, Return):
            return [self._expr(v) for v in statement.values]
        if isinstance(statement, Effect):
            forward_stack.effect(self, statement)
            return None
        if len(statement.targets) != 1:  # out, (h, c) = lstm(x): one name per value
            e = statement.value
            if isinstance(e, Call) and e.func in tensor_functions.MULTI and \
                    e.func not in self.layers:
                tensor_functions.assign_parts(self, statement)
                return None
            layer = self.layers.get(e.func) if isinstance(e, Call) else None
            if layer is None or layer.structural:
                self.fail(statement.pos, "only an rnn, lstm or gru call returns several values",
                          "assign one name per line")
            ops.get(layer.op).assign(self, layer, statement)
            return None
        self.bind_name(statement, statement.targets[0], self._expr(statement.value))
        return None

    def bind_name(self, statement, target: str, node: str) -> None:
        """``target = <node>``: the name is checked and becomes the node's variable."""
        self._check_target(statement, target)
        self.g.nodes[node]["var"] = target
        self.vars[target] = node
        if self.g.nodes[node]["op"] == "stack_new":  # skips = stack(): the list's name
            self.g.nodes[node]["attrs"]["stack"] = target
            self.stacks.add(target)

    def _check_target(self, statement, target: str) -> None:
        try:  # the name becomes a local of the generated forward: F or torch would shadow
            check_identifier(target)
        except ValueError as exc:
            message, _, hint = str(exc).partition(HINT_MARK)
            self._fail(statement.pos, f"cannot assign to {message}", hint or None)
        if target in self.layers or target in self.scope.values:
            self._fail(statement.pos, f"cannot assign to '{target}': it names a "
                       f"{'layer' if target in self.layers else 'param'}")

    # ---------------------------------------------------------------------- expressions
    def _expr(self, e: Expr) -> str:
        if isinstance(e, Num):
            return self._node("const", [], e.pos, value=e)
        if isinstance(e, Name):
            return self._name(e)
        if isinstance(e, Neg):
            operand = self._expr(e.operand)
            if self.g.nodes[operand]["op"] == "const":
                return self._node("const", [], e.pos, value=e)
            return self._node("neg", [operand], e.pos)
        if isinstance(e, BinOp):
            return self._binop(e)
        if isinstance(e, Call):
            return self._call(e)
        if isinstance(e, Subscript):
            return self._subscript(e)
        self._fail(getattr(e, "pos", Pos()), "unsupported expression")

    def _name(self, e: Name) -> str:
        if e.id in self.broken and e.id not in self.vars:
            raise _Abort
        if e.id in self.vars:
            return self.vars[e.id]
        if e.id in self.scope.values:
            return self._node("const", [], e.pos, value=e)
        layer = self.layers.get(e.id)
        if layer is not None and not layer.structural:
            return ops.get(layer.op).value(self, layer, e.pos)
        if layer is not None:
            self._fail(e.pos, f"layer '{e.id}' must be called, e.g. {e.id}(x)")
        if e.id in self.later:
            self._fail(e.pos, f"'{e.id}' is used before it is assigned "
                       f"(on line {self._loc(self.later[e.id]).line})",
                       "statements run top to bottom; move the assignment up")
        known = set(self.vars) | set(self.layers) | set(self.scope.values)
        self._fail(e.pos, f"undefined name '{e.id}'", did_you_mean(e.id, known)
                   or "names are block inputs, earlier assignments, layers or params")

    def _binop(self, e: BinOp) -> str:
        left, right = self._expr(e.left), self._expr(e.right)
        if all(self.g.nodes[n]["op"] == "const" for n in (left, right)):
            self._check_constant(e)
            return self._node("const", [], e.pos, value=e)  # folded: both sides are params
        if e.op not in ("add", "sub", "mul", "div", "pow", "matmul", *COMPARISONS):
            self._fail(e.pos, f"operator {e.op} is only allowed in param expressions")
        return self._node(e.op, [left, right], e.pos)

    def _check_constant(self, e: BinOp) -> None:
        """Arithmetic of params and numbers must be computable (bounded, defined) now, so
        ``9 ** 9 ** 9`` is an error here rather than a hang in a pass or at run time."""
        try:
            self.scope.value(e)
        except ExprError as exc:
            self._fail(exc.pos, exc.message, exc.hint)

    def _subscript(self, e: Subscript) -> str:
        value = self._expr(e.value)
        index = []
        for item in e.indices:
            if isinstance(item, Slice):
                bounds = (self._static_int(item.lower), self._static_int(item.upper))
                step = self._static_int(item.step)
                if step is not None and step < 1:
                    self._fail(item.pos, f"slice step must be positive, got {step}")
                index.append(bounds if step is None else (*bounds, step))
            elif isinstance(item, Name) and item.id in (ELLIPSIS, "None"):
                index.append(item.id)  # x[..., 0]; x[:, None] adds an axis
            else:
                index.append(self._static_int(item))
        return self._node("subscript", [value], e.pos, index=tuple(index))

    def _static_int(self, e: Expr | None) -> int | None:
        if e is None:
            return None
        try:
            value = self.scope.value(e)
        except Exception:  # noqa: BLE001 - reported as a wiring error below
            value = None
        if not isinstance(value, int) or isinstance(value, bool):
            self._fail(getattr(e, "pos", Pos()), "indices must be integer constants")
        return value

    def _call(self, e: Call) -> str:
        if e.func in self.broken:
            raise _Abort
        if e.func in self.layers:
            return self._call_layer(self.layers[e.func], e)
        if e.func in ("cat", "stack") and len(e.args) == 1 and isinstance(e.args[0], ListExpr):
            e = replace(e, args=e.args[0].items)  # torch.cat([a, b], dim=-1), as PyTorch says
        if e.func in forward_stack.STACK_BUILTINS and (e.func == "pop" or not e.args):
            return forward_stack.call_builtin(self, e)  # stack(): skips; stack(a, b): torch
        if e.func in tensor_functions.READERS:
            return tensor_functions.READERS[e.func](self, e)
        if e.func == "where" and len(e.args) == 3 and not _is_number(self, e.args[2]):
            return tensor_functions.where3(self, e)
        if e.func in BUILTINS:
            return self._call_builtin(e)
        if e.func in forward_seq.SEQUENCE_BUILTINS:
            return forward_seq.call_builtin(self, e)
        functions = sorted({*BUILTINS, *forward_seq.SEQUENCE_BUILTINS,
                            *tensor_functions.READERS, *forward_stack.STACK_BUILTINS})
        guess = did_you_mean(e.func, {*self.layers, *functions})
        layers = f"; layers here: {', '.join(self.layers)}" if self.layers else ""
        self._fail(e.pos, f"'{e.func}' is neither a layer of this block nor a function",
                   f"{guess + ' ' if guess else ''}functions: {', '.join(functions)}{layers}")

    def _call_builtin(self, e: Call) -> str:
        if e.func in SPECIAL:  # value arguments that are not tensors (see forward_attention)
            return SPECIAL[e.func](self, e)
        op, arity = BUILTINS[e.func]
        attrs = dict(_BUILTIN_DEFAULTS.get(e.func, {}))
        args = list(e.args)
        if op == "transpose":
            if len(args) != 3:
                self._fail(e.pos, "transpose(x, dim0, dim1) takes 3 arguments")
            attrs = {"dim0": self._static_int(args[1]), "dim1": self._static_int(args[2])}
            args = args[:1]
        elif len(args) != arity:
            self._fail(e.pos, f"{e.func}() takes {arity} argument(s), got {len(args)}")
        inputs = [self._expr(a) for a in args]
        if inputs and all(self.g.nodes[n]["op"] == "const" for n in inputs):
            self._fail(e.pos, f"{e.func}() takes a tensor, got only numbers",
                       "compute numbers in params (sqrt, log, min, max), tensors in forward")
        for key, value in e.kwargs:
            if key in _BUILTIN_EXPR_KEYWORDS.get(e.func, ()):
                self._static_int(value)  # must be an integer; kept as an expression
                attrs[key] = value
                continue
            if key not in attrs:
                self._fail(e.pos, f"{e.func}() has no keyword '{key}'")
            attrs[key] = self._static_int(value)
        return self._node(op, inputs, e.pos, **attrs)

    def _call_layer(self, layer: Layer, e: Call) -> str:
        if layer.spec.model_fields_set & {"when"} and layer.op != "repeat" \
                and (len(e.args) != 1 or e.kwargs):
            self._fail(e.pos, f"{layer.name} has `when`, so where it is off it is "
                       "nn.Identity(): call it with one input",
                       "pass the other inputs differently, or drop `when`")
        if not layer.structural:
            return ops.get(layer.op).call(self, layer, e)
        args, kwargs = self.call_args(layer, e)
        args = self._block_args(layer, args, kwargs, e.pos)
        self.classes.bind(layer, ())
        sub = layer.submodules[0]
        loop = layer.op == "repeat" or sub.args.get("steps") is not None
        node = self._node("call", args, e.pos, var=layer.name, target=layer.name,
                          kwargs=(), repeat=loop)
        self._passed_stacks(layer, e, node)
        return node

    def _passed_stacks(self, layer: Layer, e: Call, node: str) -> None:
        """Stacks given to a block it pushes onto or pops from continue after the call."""
        inputs = self._block_inputs(layer)
        callees = [self.blocks[b] for b in layer.submodules[0].args.get("blocks", ())
                   if b in self.blocks] or [self.blocks.get(layer.submodules[0].cls)]
        used = {n for c in callees if c is not None for n in getattr(c, "stack_inputs", [])}
        named = dict(zip(inputs, e.args, strict=False)) | dict(e.kwargs)
        positions, names = [], []
        for position, name in enumerate(inputs):
            arg = named.get(name)
            if name in used and isinstance(arg, Name) and arg.id in self.vars:
                self.stacks.add(arg.id)
                positions.append(position)
                names.append(arg.id)
        forward_stack.after_call(self, e, node, positions, names)

    def _block_inputs(self, layer: Layer) -> list[str]:
        first = layer.spec.block_names()
        blocks = self.scope.loaded.spec.blocks
        name = next((b for b in first if b in blocks), first[0])
        return blocks[name].inputs

    def call_args(self, layer: Layer, e: Call) -> tuple[list[str], tuple[str, ...]]:
        """A call's argument nodes, positional then keyword, and the keyword names."""
        args = [self._expr(a) for a in e.args]
        kwargs = tuple(k for k, _ in e.kwargs)
        args += [self._expr(v) for _, v in e.kwargs]
        if not e.args:
            self._fail(e.pos, f"{layer.name}() needs at least one input")
        return args, kwargs

    def _block_args(self, layer: Layer, args: list[str], kwargs: tuple, pos: Pos) -> list[str]:
        """Order a repeat's arguments as the block declares its inputs (keywords by name)."""
        blocks = self.scope.loaded.spec.blocks
        candidates = [b for b in layer.spec.block_names() if b in blocks]
        first = candidates[0]  # a cycle's, pattern's or choice's blocks take the same
        names = blocks[first].inputs
        other = next((b for b in candidates if blocks[b].inputs != names), None)
        if other is not None:
            self._fail(pos, f"{layer.name} may build {first} or {other}, whose inputs differ "
                       f"({', '.join(names)} vs {', '.join(blocks[other].inputs)})",
                       "blocks one entry chooses between take the same inputs")
        positional = args[:len(args) - len(kwargs)]
        by_name = dict(zip(names, positional, strict=False))
        for key, value in zip(kwargs, args[len(positional):], strict=True):
            if key not in names or key in by_name:
                self._fail(pos, f"{layer.name}(): {first} has no (other) input "
                           f"named '{key}'", f"its inputs: {', '.join(names)}")
            by_name[key] = value
        if len(positional) > len(names) or set(by_name) != set(names):
            verb = "repeats" if layer.op == "repeat" else "is"
            self._fail(pos, f"{layer.name}() {verb} {first}, which takes "
                       f"{len(names)} input(s) ({', '.join(names)}), got {len(args)}")
        return [by_name[n] for n in names]

    # -------------------------------------------------------------------------- helpers
    def _node(self, op: str, inputs: list[str], pos: Pos, var: str | None = None,
              **attrs) -> str:
        node = add_node(self.g, op, inputs, base=var or op, loc=self._loc(pos), var=var,
                        stmt=self.stmt, **attrs)
        if op == "const":  # a param expression: Python's type decides (ids * 2 stays int)
            kind = python_type(attrs["value"], self.scope.values)
            self.g.nodes[node].update(shape=(), dtype={int: INT, bool: BOOL}.get(kind,
                                                                                 FLOAT))
        return node

    # the names op modules write with (archcc/ops): nodes, sub-expressions, errors
    def node(self, op: str, inputs: list[str], pos: Pos, var: str | None = None,
             **attrs) -> str:
        return self._node(op, inputs, pos, var, **attrs)

    def expr(self, e: Expr) -> str:
        return self._expr(e)

    def fail(self, pos: Pos, message: str, hint: str | None = None):
        self._fail(pos, message, hint)

    def _loc(self, pos: Pos):
        return self.scope.loaded.where.text((*self.path, "forward"), pos)

    def _where(self) -> str:
        return ".".join((*self.path, "forward"))

    def _fail(self, pos: Pos, message: str, hint: str | None = None):
        self.errors.append(Diagnostic(self._loc(pos), self._where(), message, hint))
        raise _Abort


class _Abort(Exception):
    """Stops interpreting one statement after its error was recorded."""


def _is_number(fi: ForwardInterpreter, e: Expr) -> bool:
    """A param expression or ``-inf`` (a fill value), as opposed to a tensor."""
    if isinstance(e, Neg) and isinstance(e.operand, Name) and e.operand.id == "inf":
        return True
    names = [n.id for n in _names(e)]
    return all(n in fi.scope.values for n in names)


def _names(e) -> list:
    if isinstance(e, Name):
        return [e]
    out = []
    for child in (getattr(e, "left", None), getattr(e, "right", None),
                  getattr(e, "operand", None), *getattr(e, "args", ())):
        if child is not None:
            out += _names(child)
    return out
