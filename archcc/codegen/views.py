"""View-models: every naming and formatting decision about the generated file, in Python.

The jinja2 template only lays these out. A :class:`FileView` holds the banner, the Config
fields, one :class:`ClassView` per generated class (leaves first), the checkpoint tables and
``example_inputs``; nothing here touches torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc import ops
from archcc.codegen import safe_text
from archcc.codegen.forward import Line, emit_forward
from archcc.codegen.render import render_expr
from archcc.codegen.render_init import fused_linears, init_table, no_decay_paths
from archcc.codegen.seq2seq import split as split_seq2seq
from archcc.codegen.views_blocks import (
    conditional,
    forward_resolver,
    init_resolver,
    structure_line,
)
from archcc.codegen.views_blocks import init_params as init_params_of
from archcc.codegen.views_decoder import (
    GreedyView,
    greedy_view,
    name_decoder_inputs,
    recurrent_token,
)
from archcc.ir.graph import ModuleIR, Program, Submodule
from archcc.ops.base import is_default
from archcc.parser import project_path

_TYPES = {bool: "bool", int: "int", float: "float"}


@dataclass
class MethodView:
    """A method besides ``forward`` (a seq2seq model's ``encode`` and ``decode``)."""

    name: str
    doc: str
    params: str
    lines: list[Line]
    decorator: str = ""
    returns: str = ""


@dataclass
class ClassView:
    name: str
    doc: list[str]
    init_params: str
    init_lines: list[str]
    forward_params: str
    forward_lines: list[Line]
    methods: list[MethodView] = field(default_factory=list)
    base: str = "nn.Module"  # a repeated block: Checkpointable


@dataclass
class ConfigField:
    name: str
    type: str
    default: str


@dataclass
class FileView:
    banner: list[str]
    doc: list[str]
    needs_math: bool
    config_fields: list[ConfigField]
    config_properties: list[ConfigField]
    classes: list[ClassView]
    model_name: str
    layouts: list[tuple[str, dict[str, list]]]
    example_lines: list[str]
    example_return: str
    extra: dict = field(default_factory=dict)
    needs_functional: bool = True  # `import torch.nn.functional as F` only where F is used
    list_groups: list[list[str]] = field(default_factory=list)  # lists a loop walks together
    generation: dict | None = None  # the spec's `generate:` facet, for generation.py.j2
    plugin_classes: list[str] = field(default_factory=list)  # helpers' and plugin ops' source
    functions: list[str] = field(default_factory=list)  # module-level functions of ops


# ----------------------------------------------------------------------------- scopes


def _block_resolver(name: str) -> str:
    return f"config.{name}"


def _forward_resolver(module: ModuleIR, used_args: set[str]):
    if module.kind == "lowered":
        return lambda name: f"self.{name}"
    return forward_resolver(module, used_args)


def _init_resolver(module: ModuleIR, program: Program):
    return (lambda name: name) if module.kind == "lowered" else init_resolver(module, program)


# ---------------------------------------------------------------------------- __init__


def _arg(value, resolve) -> str:
    return render_expr(value, resolve)


def _submodule_line(sub: Submodule, program: Program, resolve) -> list[str]:
    """The ``self.<name> = ...`` line(s) of one submodule: a kind an op defines, or
    structure (a generated class, a repeat, a plugin's class)."""
    a = sub.args
    if sub.kind == "repeat" and a.get("pattern"):  # layer i is the block letter i names
        table = ", ".join(f'"{letter}": {cls}' for letter, cls in a["letters"].items())
        return [f'self.{sub.name} = nn.ModuleList({{{table}}}[c](config) for c in '
                f'"{a["pattern"]}")']
    if sub.kind == "repeat" and a.get("cycle"):  # blocks taken in turn
        classes = ", ".join((sub.cls, *a["cycle"]))
        return [f"self.{sub.name} = nn.ModuleList(({classes})[i % {1 + len(a['cycle'])}]"
                f"(config) for i in range({_arg(a['times'], resolve)}))"]
    if sub.kind in ("repeat", "block"):
        lines = [structure_line(sub, program, resolve)]
    elif sub.kind == "plugin":
        lines = [_plugin_line(sub, resolve)]
    elif sub.kind == "class":
        ctor = f"{sub.cls}({_class_args(sub, program, resolve)})"
        for when, args, cls in reversed(sub.alternatives):  # WindowAttention(...) if ... else
            alt = Submodule(sub.name, "class", args, cls=cls)
            ctor = f"{cls}({_class_args(alt, program, resolve)}) if {_arg(when, resolve)} " \
                   f"else {ctor}"
        lines = [f"self.{sub.name} = {ctor}"]
    else:
        lines = ops.get_kind(sub.kind).init_lines(sub, lambda v: _arg(v, resolve))
    if sub.when is not None:  # checked at build: one line, an nn.Module
        return [conditional(lines[0], sub, resolve)]
    return lines


def _plugin_line(sub: Submodule, resolve) -> str:
    """``self.ca = ChannelAttention(config.channels, config.reduction)``: a plugin op's class,
    sizes positionally, scalars and options by keyword (options are validated literals)."""
    a = sub.args
    parts = [_arg(v, resolve) for v in a["sizes"]]
    parts += [f"{k}={_arg(v, resolve)}" for k, v in a["keywords"].items()]
    parts += [f"{k}={safe_text.literal(v)}" for k, v in a["literals"].items()]
    return f"self.{sub.name} = {sub.cls}({', '.join(parts)})"


def plugin_classes(program: Program) -> list[str]:
    """Source of each plugin op class the program uses, once each, in first-use order."""
    from archcc import plugins

    used = {sub.cls: sub.args["op"] for m in program.modules.values()
            for sub in m.submodules.values() if sub.kind == "plugin"}
    return [plugins.class_source(plugins.get(op), cls) for cls, op in used.items()]


def _class_args(sub: Submodule, program: Program, resolve) -> str:
    """Positional for required constructor args, keywords for changed defaults."""
    cls = program.modules[sub.cls]
    parts = []
    for name, default in cls.ctor_args:
        value = sub.args[name]
        if default is None:
            parts.append(_arg(value, resolve))
        elif not is_default(value, default):
            parts.append(f"{name}={_arg(value, resolve)}")
    return ", ".join(parts)


def _init_lines(module: ModuleIR, program: Program, needs_config: bool,
                kept: tuple[str, ...] = ()) -> list[str]:
    resolve = _init_resolver(module, program)
    lines = ["super().__init__()"]
    if needs_config or module.kind == "model":  # the model keeps it: runtime, export, bench
        lines.append("self.config = config")
    lines += [f"self.{name} = {name}" for name in kept]  # arguments its forward reads
    for name, value in module.scalars.items():
        lines.append(f"self.{name} = {render_expr(value, resolve)}")
    for sub in module.submodules.values():
        lines += _submodule_line(sub, program, resolve)
    for sub in module.submodules.values():
        if sub.tie:
            lines.append(f"self.{sub.name}.weight = self.{sub.tie}.weight  # tied")
    if module.load_fusions:  # checkpoints with the unfused linears still load
        fused = ", ".join(f"{safe_text.literal(name)}: {safe_text.literal(tuple(parts))}"
                          for name, parts in module.load_fusions.items())
        lines.append(f"self.register_load_state_dict_pre_hook(_concat_on_load({{{fused}}}))")
    return lines


# ----------------------------------------------------------------------------- classes


def _doc(module: ModuleIR, program: Program) -> list[str]:
    lines = [safe_text.docstring(module.doc)] if module.doc else []
    if module.kind == "lowered":
        lines.append(f"Lowered by archcc from `op: {module.signature[0]}`.")
        if module.display:
            names = ", ".join(f"{short} = {name}" for name, short in module.display.items())
            lines.append(f"Shapes: {names}.")
    elif module.loc is not None:
        spec = project_path(module.loc.file)
        lines.append(safe_text.docstring(f"spec: {spec}:{module.loc.line}"))
    return lines or [module.name]


def _comments_fit(lines: list[Line], width: int = 100, indent: int = 8) -> list[Line]:
    """Shape comments that would push a line past ``width`` go on their own line above."""
    out = []
    for line in lines:
        full = indent + 4 * line.indent + len(line.code) + len(line.comment) + 4
        if line.comment and full > width:
            out += [Line(f"# {line.comment}", "", line.indent), Line(line.code, "", line.indent)]
        else:
            out.append(line)
    return out


def _defaults(module: ModuleIR) -> list[Line]:
    """``if token_type_ids is None: token_type_ids = torch.zeros_like(input_ids)``: the
    reference's default for each optional input."""
    lines = []
    for node in module.inputs:
        attrs = module.graph.nodes[node]["attrs"]
        if attrs.get("default"):
            dtype = {"int64": "torch.long", "bool": "torch.bool"}.get(attrs["dtype"],
                                                                      "torch.float32")
            lines += [Line(f"if {attrs['name']} is None:",
                           f"{attrs['default']}, as the reference defaults it"),
                      Line(f"{attrs['name']} = torch.{attrs['default']}_like({attrs['like']}, "
                           f"dtype={dtype})", indent=1)]
    return lines


def _param(attrs: dict) -> str:
    """A forward argument; optional ones (the generation facet's ``cache``) default to None."""
    return f"{attrs['name']}=None" if attrs.get("optional") else attrs["name"]


def class_view(module: ModuleIR, program: Program) -> ClassView:
    if module.facets.get("template"):  # a class its op writes from facets (a decoder loop)
        return _template_view(module, program)
    used_args: set[str] = set()
    resolve = _forward_resolver(module, used_args)
    used_config: list[bool] = []

    def tracking(name: str) -> str:
        text = resolve(name)
        if text.startswith("self.config."):
            used_config.append(True)
        return text

    body = _comments_fit(emit_forward(module, tracking if module.kind != "lowered" else resolve))
    body = _defaults(module) + body
    if module.kind == "lowered":
        init_params = _ctor_params(module)
    else:
        init_params = init_params_of(module) if module.kind == "block" else \
            "config: Config = Config()"
    forward_params = ", ".join(_param(module.graph.nodes[n]["attrs"]) for n in module.inputs)
    methods = []
    facet = program.generate
    if module.kind == "model" and facet is not None and facet.kind == "seq2seq":
        forward_params, body, methods = _encode_decode(module, facet.input, tracking)
    elif module.kind == "model" and \
            (target := recurrent_token(module, program.modules)) is not None:
        name_decoder_inputs(module, program.modules)
        forward_params, body, methods = _encode_decode(module, target, tracking, cached=False)
    kept = tuple(n for n in module.args if n in used_args)
    init_lines = _init_lines(module, program, bool(used_config), kept)
    if module.kind == "model":  # like Hugging Face's post_init: the reference's scheme
        init_lines.append("self.init_weights()")
        methods.append(_init_weights(program))
    base = "Checkpointable" if module.kind == "block" else "nn.Module"
    return ClassView(module.name, _doc(module, program), init_params, init_lines,
                     forward_params, body, methods, base)


def _init_weights(program: Program) -> MethodView:
    """``init_weights()``: every parameter drawn as the spec's ``init:`` says."""
    lines, _ = init_table(program)
    return MethodView("init_weights", "Draw the parameters as the reference does (the spec's "
                      "`init:`).", "",
                      [Line(text) for text in lines], "torch.no_grad()", "None")


def _ctor_params(module: ModuleIR) -> str:
    """A lowered class's ``__init__`` parameters: ``dim, n_head, bias=True, dropout=0.0``."""
    return ", ".join(name if default is None else f"{name}={safe_text.literal(default)}"
                     for name, default in module.ctor_args)


def _template_view(module: ModuleIR, program: Program) -> ClassView:
    """A class whose op writes its body from the facets (``op: rnn_decoder``'s loop)."""
    body = ops.get(module.facets["template"]).body(module.facets)
    methods = [MethodView(name, doc, args, _comments_fit(lines), decorator)
               for name, doc, args, lines, decorator in body.methods]
    init = _init_lines(module, program, False) + list(getattr(body, "init_lines", []))
    return ClassView(module.name, _doc(module, program), _ctor_params(module), init,
                     body.forward_params, _comments_fit(body.forward_lines), methods)


def op_functions(program: Program) -> list[str]:
    """Module-level functions the ops of the file's classes bring (``load_balancing_loss``
    for a mixture of experts), each once, in first-use order."""
    texts: list[str] = []
    for module in program.modules.values():
        if module.facets.get("template"):
            for text in ops.get(module.facets["template"]).functions(module.facets):
                if text not in texts:
                    texts.append(text)
    return texts


def _encode_decode(module: ModuleIR, token: str, resolve,
                   cached: bool = True) -> tuple[str, list[Line], list]:
    """``forward = decode(encode)``, so generation can run the encoder once."""
    halves = split_seq2seq(module, token)
    memory, sources = ", ".join(halves.memory), ", ".join(halves.encoder_inputs)
    names = [module.graph.nodes[n]["attrs"]["name"] for n in module.inputs]
    params = ", ".join(n for n in names if n != "cache")  # forward itself never caches
    forward = [Line(f"{memory} = self.encode({sources})"),
               Line(f"return self.decode({', '.join([token, memory, *halves.passed])})")]
    decode_params = ", ".join(_param(halves.decode.graph.nodes[n]["attrs"])
                              for n in halves.decode.inputs)
    methods = [
        MethodView("encode", "The encoder half of forward: run it once per batch of sources.",
                   sources, _comments_fit(emit_forward(halves.encode, resolve))),
        MethodView("decode", "The decoder half; with a KVCache, one new position per call "
                   "after the first." if cached else "The decoder half, by teacher forcing.",
                   decode_params,
                   _comments_fit(emit_forward(halves.decode, resolve))),
    ]
    return params, forward, methods


# ------------------------------------------------------------------------------- file


def _config_fields(program: Program) -> tuple[list[ConfigField], list[ConfigField]]:
    fields, props = [], []
    for name, value in program.params.items():
        type_name = _type_name(value)
        if name in program.param_exprs:
            text = render_expr(program.param_exprs[name], lambda n: f"self.{n}")
            props.append(ConfigField(name, type_name, text))
        else:
            fields.append(ConfigField(name, type_name, safe_text.literal(value)))
    return fields, props


def _list_groups(program: Program) -> list[list[str]]:
    """The list params each stage loop walks in lockstep (``over: [depths, num_heads]``):
    the generated Config checks that they keep one length."""
    from archcc.parser.structure import Repeat

    spec, groups = program.loaded.spec if program.loaded else None, []
    owners = [spec.model, *spec.blocks.values()] if spec is not None else []
    for owner in owners:
        for layer in owner.layers.values():
            names = [n for n in getattr(layer, "over", ()) if n in program.params
                     and n not in program.param_exprs] if isinstance(layer, Repeat) else []
            if len(names) > 1 and names not in groups:
                groups.append(names)
    return groups


def _type_name(value) -> str:
    """``int``, ``str``, ``tuple[int, ...]``: a Config field's annotation."""
    if isinstance(value, tuple):
        inner = {_type_name(v) for v in value}
        item = inner.pop() if len(inner) == 1 else "float" if inner == {"int", "float"} \
            else "object"
        return f"tuple[{item}, ...]"
    return _TYPES.get(type(value), "str")


def _layouts(program: Program) -> list[tuple[str, dict[str, list]]]:
    literal, out = safe_text.literal, []
    for name, layout in program.layouts.items():
        out.append((name, {
            "rename": [(literal(a), literal(b)) for a, b in layout.rename.items()],
            "concat": [(literal(a), literal(list(b))) for a, b in layout.concat.items()],
            "split": [_split_rule(a, b) for a, b in layout.split.items()],
            "transpose": [literal(p) for p in layout.transpose],
            "drop": [literal(p) for p in layout.drop],
        }))
    return out


def _split_rule(source: str, rule) -> tuple[str, ...]:
    """``(source, targets)``, plus ``{"sizes": lambda config: [...], "groups": ...}`` for an
    uneven or interleaved split (its sizes are expressions over the Config)."""
    literal = safe_text.literal
    if isinstance(rule, list):
        return literal(source), literal(list(rule))
    how = []
    if rule.sizes:
        sizes = ", ".join(render_expr(_parse(size), _config_resolver) for size in rule.sizes)
        how.append(f'"sizes": lambda config: [{sizes}]')
    if rule.groups is not None:
        how.append(f'"groups": lambda config: {render_expr(_parse(rule.groups), _config_resolver)}')
    return literal(source), literal(list(rule.into)), "{" + ", ".join(how) + "}"


def _config_resolver(name: str) -> str:
    return f"config.{name}"


def uses_cut(program: Program) -> bool:
    """Does a layout split unevenly or per group (convert_state_dict then takes a config)?"""
    return any(not isinstance(rule, list) for layout in program.layouts.values()
               for rule in layout.split.values())


def _example_lines(program: Program) -> tuple[list[str], str]:
    """Lines building random inputs; input symbols other than B come from ``dims``."""
    lines, seen = [], set()
    for name, spec in program.inputs.items():
        dims = []
        for raw in spec.shape:
            text = str(raw)
            if text.isidentifier() and text not in program.params:
                if text == "B":
                    dims.append("batch")
                    continue
                if text not in seen:
                    seen.add(text)
                    lines.append(f'{text} = dims.get("{text}", {program.dims.get(text, 8)})')
                dims.append(text)
            else:
                dims.append(render_expr(_parse(raw), _block_resolver))
        shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        lines.append(f"{name} = {_random(spec, shape)}")
    return lines, ", ".join(program.inputs) + ("," if len(program.inputs) == 1 else "")


def _parse(raw):
    from archcc.parser.expr import Num, parse_expr

    return Num(raw) if isinstance(raw, int) else parse_expr(raw)


def _random(spec, shape: str) -> str:
    if spec.dtype == "int64":
        high = "2" if spec.high is None else render_expr(_parse(spec.high), _block_resolver)
        return f"torch.randint(0, {high}, {shape})"
    if spec.dtype == "bool":
        return f"torch.ones({shape}, dtype=torch.bool)"
    return f"torch.randn({shape})"


def file_view(program: Program) -> FileView:
    fields, props = _config_fields(program)
    classes = [class_view(m, program) for m in program.modules.values()]
    extra_classes = plugin_classes(program)
    code = [text for c in classes for text in
            [*c.init_lines, *(line.code for line in c.forward_lines),
             *(line.code for m in c.methods for line in m.lines)]]
    extra_classes = ops.helpers_for(code + extra_classes) + extra_classes
    functions = op_functions(program)
    needs_math = any("math." in line for c in classes for line in c.init_lines) or any(
        "math." in line.code for c in classes for line in c.forward_lines) or any(
        "math." in text for text in extra_classes) or any(
        "math." in line.code for c in classes for m in c.methods for line in m.lines)
    example_lines, example_return = _example_lines(program)
    spec = safe_text.comment(project_path(program.source))
    banner = [*safe_text.BANNER, f"# spec:    {spec}", f"# rebuild: archcc build {spec}"]
    doc = [safe_text.docstring(program.doc) if program.doc
           else f"{program.name}, generated by archcc."]
    needs_functional = any("F." in text for c in classes for text in
                           [*c.init_lines, *(line.code for line in c.forward_lines),
                            *(line.code for m in c.methods for line in m.lines)]) or any(
        "F." in text for text in [*extra_classes, *functions])
    _, helpers = init_table(program)
    extra = {"concat_on_load": any(m.load_fusions for m in program.modules.values()),
             "greedy": _greedy(program), "cut": uses_cut(program),
             "training": {"by_rows": "by_rows" in helpers,
                          "lecun_normal": "lecun_normal_" in helpers,
                          "uniform_within": "uniform_within" in helpers,
                          "no_decay": [safe_text.literal(p) for p in no_decay_paths(program)],
                          "checkpointing": any(m.kind == "block"
                                               for m in program.modules.values()),
                          "fused": fused_linears(program)}}
    return FileView(banner, doc, needs_math, fields, props, classes, program.model.name,
                    _layouts(program), example_lines, example_return, extra,
                    needs_functional=needs_functional, generation=_generation(program),
                    plugin_classes=extra_classes, functions=functions,
                    list_groups=_list_groups(program))


def _greedy(program: Program) -> GreedyView | None:
    """``greedy_decode()`` for a model that returns an rnn_decoder's logits."""
    model = program.model
    token = recurrent_token(model, program.modules) if program.generate is None else None
    if token is None:
        return None
    name_decoder_inputs(model, program.modules)  # as class_view did: the same names
    call = model.graph.nodes[model.graph.nodes[model.output]["inputs"][0]]
    decoder = program.modules[model.submodules[call["attrs"]["target"]].cls]
    return greedy_view(model, split_seq2seq(model, token), decoder.facets)


def _generation(program: Program) -> dict | None:
    """Names and defaults ``generate()`` is written with; None without the facet."""
    facet = program.generate
    if facet is None:
        return None
    names = list(program.inputs)
    encoder = [n for n in names if n != facet.input]
    picked = [f"inputs[{names.index(n)}]" for n in (encoder or [facet.input])]
    decode_args = ""
    if facet.kind == "seq2seq":
        halves = split_seq2seq(program.model, facet.input)
        memory = ["*memory" if len(halves.memory) > 1 else "memory"]
        decode_args = ", ".join(memory + halves.passed)
    cross = any(d["attrs"].get("memo") for m in program.modules.values()
                for _, d in m.graph.nodes(data=True))
    nodes = [d for m in program.modules.values() for _, d in m.graph.nodes(data=True)]
    window = any(d["op"] == "kv_cache" and d["attrs"].get("window") is not None for d in nodes)
    per_layer = any(d["op"] == "rope_angles" and len(d["inputs"]) == 2 for d in nodes)
    return {"kind": facet.kind, "input": facet.input, "eos": facet.eos, "pad": facet.pad,
            "start": facet.start, "encoder_inputs": encoder, "cross": cross, "window": window,
            "per_layer": per_layer,
            "decode_args": decode_args,
            "usage": f"generate(model, {', '.join(picked)}, max_new_tokens=8)"}
