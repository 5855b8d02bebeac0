"""The generated ``init_weights()``: the init table (:mod:`archcc.ir.init`) as torch calls.

Each entry becomes one ``(pattern, initialiser)`` pair, the initialiser a plain
``torch.nn.init`` call over the spec's params, so the scheme reads as it is run::

    ("h.*.attn.proj.weight", lambda p: nn.init.normal_(p, std=0.02 / math.sqrt(2 * n))),
    ("h.*.attn.proj.bias", nn.init.zeros_),

Only numbers, operators, ``config.<param>`` and the fixed names below reach the text.
"""

from __future__ import annotations

from archcc.codegen.render import render_expr
from archcc.codegen.safe_text import literal
from archcc.ir.graph import Program
from archcc.ir.init import Drawn, Entry, no_decay, resolve
from archcc.ir.tensors import parameters, substitute
from archcc.parser.expr import Expr, Num

_TORCH_DEFAULTS = {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu", "gain": 1.0,
                   "mean": 0.0}


def _config(name: str) -> str:
    return f"config.{name}"


def _expr(value, env: dict[str, Expr]) -> str:
    if isinstance(value, int | float):
        value = Num(value)
    return render_expr(substitute(value, env), _config)


def initialiser(drawn: Drawn) -> str:
    """The Python of one scheme: ``nn.init.zeros_`` or ``lambda p: nn.init.normal_(...)``."""
    s, env = drawn.scheme, dict(drawn.env)
    name = s.name

    def arg(key: str) -> str:
        return _expr(s.arg(key), env)

    def extra(*keys: str) -> str:
        """Keywords that differ from torch's defaults."""
        out = ""
        for key in keys:
            value = s.arg(key)
            if isinstance(value, str):
                if value != _TORCH_DEFAULTS.get(key):
                    out += f", {key}={literal(value)}"
            elif not (isinstance(value, float | int) and value == _TORCH_DEFAULTS.get(key)):
                out += f", {key}={_expr(value, env)}"
        return out

    if name in ("zeros", "ones"):
        return f"nn.init.{name}_"
    if name == "constant":
        return f"lambda p: nn.init.constant_(p, {arg('value')})"
    if name == "normal":
        return f"lambda p: nn.init.normal_(p{extra('mean')}, std={arg('std')})"
    if name == "truncated_normal":
        return (f"lambda p: nn.init.trunc_normal_(p{extra('mean')}, std={arg('std')}, "
                f"a={arg('a')}, b={arg('b')})")
    if name == "uniform":
        if s.arg("bound") is not None:
            return f"uniform_within({arg('bound')})"
        return f"lambda p: nn.init.uniform_(p, {arg('a')}, {arg('b')})"
    if name in ("xavier_uniform", "xavier_normal", "orthogonal"):
        keywords = extra("gain")
        return f"lambda p: nn.init.{name}_(p{keywords})" if keywords else f"nn.init.{name}_"
    if name.startswith("kaiming"):
        keywords = extra("a", "mode", "nonlinearity")
        return f"lambda p: nn.init.{name}_(p{keywords})" if keywords else f"nn.init.{name}_"
    if name == "lecun_normal":
        return "lecun_normal_"
    raise ValueError(f"no initialiser for scheme {name}")  # an archcc bug: schemes are fixed


def entry_code(entry: Entry) -> str:
    """``("path", initialiser)``, rows block by block through ``by_rows`` where needed."""
    if len(entry.blocks) == 1 and entry.blocks[0][0] is None:
        return f"({literal(entry.path)}, {initialiser(entry.blocks[0][1])})"
    parts = ", ".join(f"({render_expr(rows, _config)}, {initialiser(drawn)})"
                      for rows, drawn in entry.blocks)
    return f"({literal(entry.path)}, by_rows({parts}))"


def init_table(program: Program) -> tuple[list[str], set[str]]:
    """The lines of ``init_weights()`` after its docstring, and the module-level helpers
    they need (``by_rows``, ``lecun_normal_``, ``uniform_within``)."""
    entries = [entry_code(e) for e in resolve(program)]
    helpers = {h for h in ("by_rows", "lecun_normal_", "uniform_within")
               if any(h + "(" in e or h + ")" in e for e in entries)}
    lines = ["config = self.config"] if any("config." in e for e in entries) else []
    lines += ["init_parameters(", "    self,", "    ["]
    lines += [f"        {e}," for e in entries]
    lines += ["    ],", ")"]
    return lines, helpers


def no_decay_paths(program: Program) -> list[str]:
    """NO_DECAY of the generated ``param_groups()``: biases, normalisation layers' tensors
    and the spec's ``no_decay:`` keys, as parameter paths."""
    return no_decay(program)


def fused_linears(program: Program) -> list[tuple[str, str]]:
    """(layer path, part names) of each linear a pass fused, as Python literals: what
    ``export_state_dict()`` splits back into the spec's own layers."""
    out: dict[str, tuple[str, ...]] = {}
    for param in parameters(program):
        if param.sub.fused:
            layer = param.path.rsplit(".", 1)[0]
            out[layer] = tuple(part.rsplit(".", 2)[-2] for part, _ in param.parts)
    return [(literal(path), literal(parts)) for path, parts in out.items()]
