"""``__init__`` lines of structure: blocks with arguments, repeats, stage loops, ``when``.

    self.layers = nn.ModuleList(
        SwinStage(config, config.embed_dim * 2 ** i, config.depths[i], ...)
        for i in range(len(config.depths)))
    self.blocks = nn.ModuleList(SwinBlock(config, dim, heads, shift=...) for i in range(depth))
    self.downsample = PatchMerging(dim // 2, dim) if downsample else nn.Identity()

Names resolve in the owning class: its own arguments bare (``dim``), params through
``config``, the element index ``i`` bare, blocks as their class names.
"""

from __future__ import annotations

import re

from archcc.codegen.render import render_expr
from archcc.ir.graph import ModuleIR, Program, Submodule
from archcc.ir.instances import INDEX
from archcc.parser.expr import Num, names_in


def init_resolver(module: ModuleIR, program: Program):
    """How a name reads in a block's or the model's ``__init__``."""
    blocks = {m.name for m in program.modules.values() if m.kind == "block"}

    def resolve(name: str) -> str:
        if name in module.args or name == INDEX or name in blocks:
            return name
        return f"config.{name}"

    return resolve


def forward_resolver(module: ModuleIR, used_args: set[str]):
    """How a name reads in a block's forward: its arguments as attributes it keeps."""
    def resolve(name: str) -> str:
        if name in module.args:
            used_args.add(name)
            return f"self.{name}"
        return f"self.config.{name}"

    return resolve


def init_params(module: ModuleIR) -> str:
    """``config: Config, dim, heads, shift=0``: required arguments first, in spec order."""
    from archcc.codegen import safe_text

    required = [n for n, d in module.args.items() if d is None]
    defaulted = [f"{n}={safe_text.literal(d)}" for n, d in module.args.items() if d is not None]
    return ", ".join(["config: Config", *required, *defaulted])


def _ctor(sub: Submodule, program: Program, resolve) -> str:
    """``SwinBlock(config, dim, heads, shift=3)``, or ``(A if c else B)(config, ...)``."""
    a = sub.args
    choose = a.get("choose")
    cls = sub.cls if choose is None else f"({render_expr(choose, resolve)})"
    given = a.get("args", {})
    candidates = [program.modules[b] for b in a.get("blocks", (sub.cls,)) if b in program.modules]
    parts = ["config"]
    if len(candidates) == 1:
        declared = candidates[0].args
        parts += [render_expr(given[n], resolve) for n, d in declared.items() if d is None]
        parts += [f"{n}={render_expr(given[n], resolve)}" for n, d in declared.items()
                  if d is not None and n in given and not _same(given[n], d)]
    else:  # blocks chosen per instance take the arguments by name
        parts += [f"{n}={render_expr(e, resolve)}" for n, e in given.items()]
    return f"{cls}({', '.join(parts)})"


def _same(expr, default) -> bool:
    return isinstance(expr, Num) and expr.value == default \
        and type(expr.value) is type(default)


def _uses_index(sub: Submodule) -> bool:
    a = sub.args
    exprs = [*a.get("args", {}).values(), a.get("choose")]
    return any(INDEX in names_in(e) for e in exprs if e is not None)


def structure_line(sub: Submodule, program: Program, resolve) -> str:
    """The line of a repeat (``nn.ModuleList``) or a block layer, ``when`` included."""
    if sub.kind == "block":
        return f"self.{sub.name} = {_ctor(sub, program, resolve)}"
    index = INDEX if _uses_index(sub) else "_"
    times = render_expr(sub.args["times"], resolve)
    return (f"self.{sub.name} = nn.ModuleList({_ctor(sub, program, resolve)} "
            f"for {index} in range({times}))")


def conditional(line: str, sub: Submodule, resolve) -> str:
    """``self.x = <ctor>`` -> ``self.x = <ctor> if <when> else nn.Identity()`` (an empty
    ModuleList for a repeat)."""
    if sub.when is None:
        return line
    target, _, ctor = line.partition(" = ")
    empty = "nn.ModuleList()" if sub.kind == "repeat" else "nn.Identity()"
    return f"{target} = {ctor} if {render_expr(sub.when, resolve)} else {empty}"


def loop_header(sub: Submodule, target: str, resolve, taken=()) -> tuple[str, str]:
    """The ``for`` line of a call in a forward, and what the loop body calls::

        for block in self.h:                  block
        for stage in self.layers:             stage     (SwinTransformerStage instances)
        for i in range(config.n_layer):       self.groups[i * G // n_layer]
        for _ in range(config.steps):         self.layer
    """
    a = sub.args
    steps = a.get("steps")
    if steps is None:
        var = element_name(sub.cls if a.get("choose") is None else "", taken)
        return f"for {var} in self.{target}:", var
    outer = resolve
    resolve = lambda name: name if name == INDEX else outer(name)  # noqa: E731 - the step i
    count = render_expr(steps, resolve)
    if sub.kind == "block":
        return f"for _ in range({count}):", f"self.{target}"
    pick = a.get("pick")
    if pick is None:
        times = render_expr(a["times"], resolve)
        one = isinstance(a["times"], Num) and a["times"].value == 1
        index = "0" if one else f"i * {_wrap(times)} // {_wrap(count)}"
    else:
        index = render_expr(pick, resolve)
    var = "_" if index == "0" else INDEX
    return f"for {var} in range({count}):", f"self.{target}[{index}]"


def element_name(cls: str | None, taken=()) -> str:
    """What one instance of a repeat is called in its loop: ``stage`` or ``group`` when its
    class says so (``SwinTransformerStage``, ``AlbertLayerGroup``), else ``block``."""
    words = re.findall(r"[A-Z][a-z]+", cls or "")
    name = words[-1].lower() if words else "block"
    return name if name in ("stage", "group") and name not in taken else "block"


def _wrap(text: str) -> str:
    return text if text.replace(".", "").replace("_", "").isalnum() else f"({text})"
