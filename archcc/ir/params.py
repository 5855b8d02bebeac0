"""Parameters: parse and evaluate ``params`` and every size written in a spec.

A :class:`ParamScope` knows each param's concrete value (for checking: heads must divide
dim) and its expression (for rendering: ``4 * config.n_embd`` keeps one file valid for every
size). Sizes elsewhere in the spec go through :meth:`ParamScope.size`, which parses with
positions and refuses absurd values before anything is allocated::

    scope = ParamScope.from_spec(loaded)
    expr = scope.size("4 * n_embd", ("blocks", "Block", "layers", "mlp", "hidden"))
    scope.value(expr)   # 3072
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc.diagnostics import ArchccError, Diagnostic
from archcc.lazy import nx, sympy
from archcc.parser import LoadedSpec
from archcc.parser.expr import (
    Expr,
    ExprError,
    ExprSyntaxError,
    Num,
    Str,
    evaluate,
    names_in,
    parse_expr,
)
from archcc.parser.yaml_loader import SpecPath

MAX_SIZE = 2**31  # no real layer is wider; catches `dim: 10**12` before torch sees it
MAX_REPEAT = 10_000


@dataclass
class ParamScope:
    """Param values, expressions and sympy symbols of one spec."""

    loaded: LoadedSpec
    values: dict[str, int | float | bool] = field(default_factory=dict)
    exprs: dict[str, Expr] = field(default_factory=dict)  # derived params only
    errors: list[Diagnostic] = field(default_factory=list)

    @classmethod
    def from_spec(cls, loaded: LoadedSpec) -> ParamScope:
        scope = cls(loaded)
        scope._resolve(loaded.spec.params)
        scope._check_magnitudes()
        if scope.errors:
            raise ArchccError(scope.errors)
        return scope

    def with_values(self, extra: dict) -> ParamScope:
        """The scope of one block instance: params plus its arguments (its own errors)."""
        return ParamScope(self.loaded, {**self.values, **extra}, self.exprs)

    # ---------------------------------------------------------------------- params block
    def _resolve(self, raw: dict[str, object]) -> None:
        deps = nx.DiGraph()
        for name, value in raw.items():
            deps.add_node(name)
            if isinstance(value, str):
                expr = self.parse(value, ("params", name))
                if expr is None:
                    continue
                if isinstance(expr, Num | Str) or not names_in(expr) and _literal(expr):
                    # "1e9" is a number YAML left as text; "[2, 2]" a list; '"basic"' a
                    # string (ResNet's layer_type): each a Config field, not a property
                    self.values[name] = evaluate(expr, {})
                    continue
                self.exprs[name] = expr
                for ref in names_in(expr):
                    deps.add_edge(ref, name)
            elif isinstance(value, list):
                self.values[name] = tuple(value)  # Config holds tuples: frozen, hashable
            else:
                self.values[name] = value
        try:
            order = list(nx.topological_sort(deps))
        except nx.NetworkXUnfeasible:
            cycle = " -> ".join(a for a, _ in nx.find_cycle(deps))
            self.errors.append(Diagnostic(self.loaded.where.key(("params",)), "params",
                                          f"params refer to each other in a cycle: {cycle}"))
            return
        for name in order:
            if name in self.exprs:
                self._evaluate_param(name)

    def _evaluate_param(self, name: str) -> None:
        try:
            self.values[name] = evaluate(self.exprs[name], self.values)
        except ExprError as exc:
            if name in self.loaded.spec.params:
                self.errors.append(self._diag(("params", name), exc))

    def _check_magnitudes(self) -> None:
        """Refuse absurd params at their definition, before any layer uses them."""
        for name, value in self.values.items():
            items = value if isinstance(value, tuple) else (value,)
            for k, item in enumerate(items):
                if not isinstance(item, bool) and isinstance(item, int | float) \
                        and abs(item) > MAX_SIZE:
                    what = f"{name}[{k}]" if isinstance(value, tuple) else name
                    path = ("params", name, str(k)) if isinstance(value, tuple) else \
                        ("params", name)
                    self.errors.append(Diagnostic(
                        self.loaded.where.key(path), f"params.{name}",
                        f"{what} = {_short(item)} is too large (limit {MAX_SIZE})",
                        "sizes are checked before anything is allocated"))

    def _diag(self, path: SpecPath, exc: ExprError | ExprSyntaxError) -> Diagnostic:
        return Diagnostic(self.loaded.where.text(path, exc.pos), ".".join(path), exc.message,
                          exc.hint)

    # -------------------------------------------------------------------- sizes elsewhere
    def parse(self, raw: object, path: SpecPath) -> Expr | None:
        """Parse a raw size (int or text) into an expression; records an error on failure."""
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            self.errors.append(Diagnostic(self.loaded.where.key(path), ".".join(path),
                                          f"expected a number or expression, got {raw!r}"))
            return None
        if not isinstance(raw, str):
            return Num(raw)
        try:
            return parse_expr(raw)
        except ExprSyntaxError as exc:
            self.errors.append(self._diag(path, exc))
            return None

    def size(self, raw: object, path: SpecPath, *, positive: bool = True,
             limit: int = MAX_SIZE) -> Expr | None:
        """Parse and check an integer size; returns None (with an error recorded) if bad."""
        expr = self.parse(raw, path)
        if expr is None:
            return None
        try:
            value = evaluate(expr, self.values)
        except ExprError as exc:
            self.errors.append(self._diag(path, exc))
            return None
        where = self.loaded.where.key(path)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "use // for integer division" if isinstance(value, float) else \
                "a list is not a size: take one element, depths[i]" \
                if isinstance(value, tuple) else "true/false is not a size"
            self.errors.append(Diagnostic(where, ".".join(path),
                                          f"size must be an integer, got {value!r}", hint))
            return None
        if (positive and value < 1) or value > limit:
            self.errors.append(Diagnostic(where, ".".join(path),
                                          f"size {_short(value)} is out of range (1..{limit})"))
            return None
        return expr

    def scalar(self, raw: object, path: SpecPath) -> Expr | None:
        """Parse a float-valued setting such as a dropout probability or an epsilon."""
        expr = self.parse(raw, path)
        if expr is not None:
            try:
                evaluate(expr, self.values)
            except ExprError as exc:
                self.errors.append(self._diag(path, exc))
                return None
        return expr

    def value(self, expr: Expr):
        return evaluate(expr, self.values)

    def check(self) -> None:
        """Raise every error recorded so far, together."""
        if self.errors:
            errors, self.errors = self.errors, []
            seen: set[tuple] = set()  # one mistake met by two walks is reported once
            unique = [d for d in errors if (d.loc, d.path, d.message) not in seen
                      and not seen.add((d.loc, d.path, d.message))]
            raise ArchccError(unique)


def _literal(expr: Expr) -> bool:
    """A list of numbers written as text (``--set depths=[2,2,18,2]`` may come as one)."""
    from archcc.parser.expr import ListExpr

    return isinstance(expr, ListExpr) and all(isinstance(i, Num) for i in expr.items)


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a dim name; all dims are positive integers."""
    return sympy.Symbol(name, integer=True, positive=True)


def to_sympy(expr: Expr) -> sympy.Expr:
    """A size expression as a sympy dim, names kept symbolic (``4*n_embd``).

    An element of a list param is a symbol of its own (``depths[2]``, ``len(depths)``);
    anything else that is no arithmetic (``cin if first else cout``) is one opaque symbol
    named by its text, whose value :func:`dim_values` supplies."""
    from archcc.parser.expr import BinOp, Call, Name, Neg, Subscript

    if isinstance(expr, Num):
        return sympy.Integer(expr.value) if isinstance(expr.value, int) else sympy.Float(expr.value)
    if isinstance(expr, Name):
        return symbol(expr.id)
    if isinstance(expr, Neg):
        return -to_sympy(expr.operand)
    if isinstance(expr, BinOp):
        a, b = to_sympy(expr.left), to_sympy(expr.right)
        # floordiv of sizes is exact (sizes are checked to be integers), so it stays a / b
        ops = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
               "div": lambda: a / b, "floordiv": lambda: a / b, "mod": lambda: sympy.Mod(a, b),
               "pow": lambda: a**b}  # only the one asked for: `x + 0` has no Mod(x, 0)
        return ops[expr.op]()
    if isinstance(expr, Call) and expr.func in ("min", "max") and len(expr.args) > 1:
        fn = sympy.Min if expr.func == "min" else sympy.Max
        return fn(*(to_sympy(a) for a in expr.args))
    if isinstance(expr, Call) and expr.func == "int" and len(expr.args) == 1:
        return to_sympy(expr.args[0])
    if isinstance(expr, Subscript | Call) or hasattr(expr, "cond") or hasattr(expr, "op"):
        return _opaque(expr)
    raise ValueError(f"{expr!r} is not a size")


OPAQUE: dict[str, Expr] = {}  # symbol name -> the expression it stands for


def _opaque(expr: Expr) -> sympy.Symbol:
    """``depths[2]``, ``len(depths)``, ``cin if i == 0 else cout``: one symbol each."""
    from archcc.parser.expr import render

    name = render(expr, str)
    OPAQUE.setdefault(name, expr)
    return symbol(name)


def dim_values(values: dict, opaque: bool = True) -> dict:
    """Symbol -> value for a DimContext: numeric params, every element and the length of
    list params (``depths[2]``, ``depths[-2]``, ``len(depths)``) and the opaque symbols
    (:func:`to_sympy`) these values decide."""
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float | tuple):
            continue
        if not isinstance(value, tuple):
            out[symbol(name)] = sympy.sympify(value)
            continue
        out[symbol(f"len({name})")] = sympy.Integer(len(value))
        for k, item in enumerate(value):
            if isinstance(item, int | float) and not isinstance(item, bool):
                out[symbol(f"{name}[{k}]")] = out[symbol(f"{name}[{k - len(value)}]")] = \
                    sympy.sympify(item)
    return {**out, **opaque_values(values)} if opaque else out


def opaque_values(values: dict) -> dict:
    """The values of the opaque symbols (``cin if i == 0 else cout``) in ``values``."""
    out = {}
    for name, expr in list(OPAQUE.items()):
        try:
            value = evaluate(expr, values)
        except (ExprError, TypeError, ValueError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[symbol(name)] = sympy.sympify(value)
    return out


def _short(value: int | float) -> str:
    """A number for a message: ``1e+12``, or ``9999...9 (400 digits)`` for a huge int
    (``f"{n:g}"`` raises OverflowError past float range)."""
    if isinstance(value, float) or abs(value) < 10**15:
        return f"{value:g}"
    digits = str(abs(value))
    return f"{'-' if value < 0 else ''}{digits[:4]}...{digits[-1]} ({len(digits)} digits)"
