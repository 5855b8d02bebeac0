"""Spec -> text, in either front end's canonical layout (``archcc fmt`` and ``archcc convert``).

Both writers print what the spec says and nothing else (defaults are left out), so reading
the output back gives the same ``Spec``; ``tests/test_dsl.py`` checks that round trip over
generated specs::

    to_arch(load_spec("specs/gpt2.yaml").spec)   # the same architecture as a .arch file

Comments outside forward bodies are not kept: a spec is data, and the writers print data.
"""

from __future__ import annotations

import json

import yaml

from archcc.parser.expr import ExprSyntaxError, parse_expr
from archcc.parser.schema import Block, Budget, Layout, Model, Spec

SCHEMA_LINE = "# yaml-language-server: $schema=../schema/archcc.schema.json"


def _dump(model) -> dict:
    return model.model_dump(by_alias=True, exclude_defaults=True)


# ----------------------------------------------------------------------------------- .arch


def _arch_value(value) -> str:
    """A value as .arch source: numbers and expressions bare, other text quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_arch_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return _arch_layer(value)
    try:
        parse_expr(value)
        return value if "\n" not in value else json.dumps(value)
    except ExprSyntaxError:
        return json.dumps(value)


_OPTIONS = {"repeat": {"times", "over", "args", "steps", "pick", "cycle", "when"},
            "block": {"args", "steps", "when"}}


def _arch_layer(layer: dict) -> str:
    if "repeat" in layer or "pattern" in layer or "block" in layer:
        return _arch_structure(layer)
    args = ", ".join(f"{k} = {_arch_value(v)}" for k, v in layer.items() if k != "op")
    return f"{layer['op']}({args})"


def _arch_structure(layer: dict) -> str:
    """``repeat(Stage, over = [depths], dim = embed_dim * 2 ** i)``, ``block(Mlp, ...)``:
    block arguments as keywords, in ``args = args(...)`` only where one is named like an
    option of the entry."""
    kind = "block" if "block" in layer else "repeat"
    head = layer[kind] if kind in layer else json.dumps(layer["pattern"])
    rest = {k: v for k, v in layer.items() if k not in ("repeat", "pattern", "blocks", "block",
                                                        "args")}
    given = layer.get("args", {})
    parts = [head, *(f"{k} = {v}" for k, v in layer.get("blocks", {}).items()),
             *(f"{k} = {_arch_value(v)}" for k, v in rest.items())]
    if set(given) & _OPTIONS[kind]:
        parts.append("args = args(" + ", ".join(f"{k} = {_arch_value(v)}"
                                                for k, v in given.items()) + ")")
    else:
        parts += [f"{k} = {_arch_value(v)}" for k, v in given.items()]
    return f"{kind}({', '.join(parts)})"


def _arch_layer_line(name: str, layer: dict, width: int = 100) -> list[str]:
    """``name = op(args)``; past ``width``, one argument per line (brackets continue lines)."""
    line = f"  {name} = {_arch_layer(layer)}"
    if len(line) <= width or "pattern" in layer:
        return [line]
    if "repeat" in layer or "block" in layer:  # one argument per line, brackets continue
        head, _, rest = _arch_layer(layer).partition("(")
        parts = _split_top(rest[:-1])
        return [f"  {name} = {head}(", *(f"    {p}," for p in parts), "  )"]
    args = [f"    {k} = {_arch_value(v)}," for k, v in layer.items() if k != "op"]
    return [f"  {name} = {layer['op']}(", *args, "  )"]


def _split_top(text: str) -> list[str]:
    """``a, f(b, c), d`` -> its top-level comma-separated parts."""
    parts, depth, start, quoted = [], 0, 0, False
    for i, char in enumerate(text):
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _arch_body(owner: Block | Model, layers_dump: dict) -> list[str]:
    lines = [text for name, layer in layers_dump.items()
             for text in _arch_layer_line(name, layer)]
    lines.append("  forward {")
    lines += [f"    {line}" if line.strip() else "" for line in owner.forward.splitlines()]
    return [*lines, "  }", "}", ""]


def _arch_checkpoint(name: str, layout: Layout) -> list[str]:
    lines = [f"checkpoint {name} {{"]
    for kind, rules in _dump(layout).items():
        if kind in ("transpose", "drop"):
            lines.append(f"  {kind} " + ", ".join(json.dumps(r) for r in rules))
            continue
        arrow = "<-" if kind == "concat" else "->"
        for key, value in rules.items():
            options = ""
            if isinstance(value, dict):  # an uneven or interleaved split
                options = " (" + ", ".join(f"{k} = {_arch_value(v)}" for k, v in value.items()
                                           if k != "into") + ")"
                value = value["into"]
            targets = value if isinstance(value, list) else [value]
            lines.append(f"  {kind} {json.dumps(key)} {arrow} "
                         + ", ".join(json.dumps(t) for t in targets) + options)
    return [*lines, "}", ""]


def _arch_budget(budget: Budget) -> list[str]:
    """``params <= 125M`` per limit; the KV cache as ``kv_cache_at(T = 8192) <= 1GiB``."""
    lines = ["budget {"]
    for name, value in _dump(budget).items():
        if isinstance(value, dict):
            args = ", ".join(f"{k} = {_arch_value(v)}" for k, v in value.items() if k != "max")
            lines.append(f"  {name}({args}) <= {value['max']}")
        else:
            lines.append(f"  {name} {value}")
    return [*lines, "}", ""]


def _arch_key(key: str) -> str:
    """An ``init`` key: a kind or layer name bare, a pattern quoted."""
    return key if key.isidentifier() else json.dumps(key)


def to_arch(spec: Spec, derived: dict | None = None) -> str:
    """The spec as a canonical .arch file; ``derived`` blocks (name -> ``{extends: Base,
    layers: {...}}``) are written as the change they are, not expanded."""
    derived = derived or {}
    doc = f" {json.dumps(spec.doc)}" if spec.doc is not None else ""
    lines = [f"archcc {spec.archcc}", f"spec {spec.name}{doc}", ""]
    for section in ("params", "dims"):
        values = getattr(spec, section)
        if values:
            lines += [f"{section} {{", *(f"  {k} = {_arch_value(v)}" for k, v in values.items()),
                      "}", ""]
    for name, inp in spec.inputs.items():
        shape = ", ".join(_arch_value(d) for d in inp.shape)
        options = [f"{key} = {_arch_value(value)}" for key, value in
                   (("high", inp.high), ("default", inp.default)) if value is not None]
        extra = f" ({', '.join(options)})" if options else ""
        lines.append(f"input {name}: {inp.dtype}[{shape}]{extra}")
    if spec.inputs:
        lines.append("")
    dumped = _dump(spec)
    for name, block in spec.blocks.items():
        doc = f" {json.dumps(block.doc)}" if block.doc is not None else ""
        if name in derived:
            base, layers = derived[name]["extends"], dumped["blocks"][name]["layers"]
            lines.append(f"block {name}() extends {base}{doc} {{")
            lines += [text for layer, change in derived[name].get("layers", {}).items()
                      for text in _arch_layer_line(layer, {"op": layers[layer]["op"],
                                                           **change})]
            lines += ["}", ""]
            continue
        args = [k if v is None else f"{k} = {_arch_value(v)}" for k, v in block.args.items()]
        params = ", ".join(block.inputs) + (f"; {', '.join(args)}" if args else "")
        lines.append(f"block {name}({params}){doc} {{")
        lines += _arch_body(block, dumped["blocks"][name].get("layers", {}))
    doc = f" {json.dumps(spec.model.doc)}" if spec.model.doc is not None else ""
    lines.append(f"model{doc} {{")
    lines += _arch_body(spec.model, dumped["model"].get("layers", {}))
    if spec.generate is not None:
        lines += ["generate {", *(f"  {k} = {_arch_value(v)}"
                                  for k, v in _dump(spec.generate).items()), "}", ""]
    for name, layout in spec.checkpoint.items():
        lines += _arch_checkpoint(name, layout)
    if spec.init:
        lines += ["init {", *(f"  {_arch_key(k)} -> {v}" for k, v in spec.init.items()),
                  "}", ""]
    if spec.no_decay:
        lines += ["no_decay " + ", ".join(json.dumps(k) for k in spec.no_decay), ""]
    if spec.parallel:
        lines += ["parallel {", *(f"  {json.dumps(k)} -> {v}" for k, v in spec.parallel.items()),
                  "}", ""]
    if spec.budget is not None:
        lines += _arch_budget(spec.budget)
    if spec.reference is not None:
        lines += ["reference {", *(f"  {k} = {_arch_value(v)}" for k, v in
                                   _dump(spec.reference).items()), "}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------ YAML


def _flow(value) -> str:
    """One YAML value on one line, quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**9,
                          allow_unicode=True)
    # strip YAML's own line breaks and spaces only: str.strip() would also eat a value's
    # Unicode spaces (a doc of "\xa0" came back as None)
    return text.removesuffix("\n").removesuffix("\n...").strip(" \n")


def _yaml_body(owner: Block | Model, dumped: dict, indent: str) -> list[str]:
    lines = []
    if owner.doc is not None:
        lines.append(f"{indent}doc: {_flow(owner.doc)}")
    if "inputs" in dumped:
        lines.append(f"{indent}inputs: {_flow(dumped['inputs'])}")
    if "args" in dumped:
        lines.append(f"{indent}args: {_flow(dumped['args'])}")
    if dumped.get("layers"):
        lines.append(f"{indent}layers:")
        lines += [f"{indent}  {name}: {_flow(layer)}" for name, layer in dumped["layers"].items()]
    lines.append(f"{indent}forward: |")
    lines += [f"{indent}  {line}" if line.strip() else "" for line in owner.forward.splitlines()]
    return lines


def to_yaml(spec: Spec, schema_line: bool = True, derived: dict | None = None) -> str:
    """The spec as a canonical YAML file (layers on one line each, forward as a block);
    ``derived`` blocks are written as their ``{extends: Base, ...}`` change."""
    dumped, derived = _dump(spec), derived or {}
    lines = [SCHEMA_LINE] if schema_line else []
    lines += [f"archcc: {spec.archcc}", f"name: {spec.name}"]
    if spec.doc is not None:
        lines.append(f"doc: {_flow(spec.doc)}")
    if dumped.get("params"):
        lines.append("params:")
        lines += [f"  {k}: {_flow(v)}" for k, v in dumped["params"].items()]
    if spec.dims:
        lines.append(f"dims: {_flow(spec.dims)}")
    lines.append("inputs:")
    lines += [f"  {k}: {_flow(v)}" for k, v in dumped["inputs"].items()]
    if spec.blocks:
        lines.append("blocks:")
        for name, block in spec.blocks.items():
            if name in derived:
                lines.append(f"  {name}: {_flow(derived[name])}")
                continue
            lines.append(f"  {name}:")
            lines += _yaml_body(block, dumped["blocks"][name], "    ")
    lines.append("model:")
    lines += _yaml_body(spec.model, dumped["model"], "  ")
    if spec.generate is not None:
        lines.append(f"generate: {_flow(dumped['generate'])}")
    if dumped.get("checkpoint"):
        lines.append("checkpoint:")
        for name, layout in dumped["checkpoint"].items():
            lines.append(f"  {name}:" if layout else f"  {name}: {{}}")
            for kind, rules in layout.items():
                if isinstance(rules, dict):
                    lines.append(f"    {kind}:")
                    lines += [f"      {_flow(k)}: {_flow(v)}" for k, v in rules.items()]
                else:
                    lines.append(f"    {kind}: {_flow(rules)}")
    if spec.init:
        lines.append("init:")
        lines += [f"  {_flow(k)}: {_flow(v)}" for k, v in spec.init.items()]
    if spec.no_decay:
        lines.append(f"no_decay: {_flow(spec.no_decay)}")
    if spec.parallel:
        lines.append("parallel:")
        lines += [f"  {_flow(k)}: {v}" for k, v in spec.parallel.items()]
    if spec.budget is not None:
        lines.append("budget:" if dumped["budget"] else "budget: {}")
        lines += [f"  {k}: {_flow(v)}" for k, v in dumped["budget"].items()]
    if spec.reference is not None:
        lines.append(f"reference: {_flow(dumped['reference'])}")
    return "\n".join(lines) + "\n"


def render_spec(spec: Spec, suffix: str, schema_line: bool = True,
                derived: dict | None = None) -> str:
    """The spec in the front end a file suffix names (.arch, else YAML); ``derived`` blocks
    (name -> their ``extends`` entry) stay written as changes of their base."""
    if suffix == ".arch":
        return to_arch(spec, derived)
    return to_yaml(spec, schema_line, derived)
