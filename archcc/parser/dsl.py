"""The .arch front end: the compact spec language, parsed by the same grammar as expressions.

A .arch file says what a YAML spec says, in fewer lines::

    archcc 1
    spec gpt2 "GPT-2 language model"

    params {
      n_embd = 768
      n_layer = 12
    }
    input input_ids: int64[B, T] (high = vocab_size)

    block Block(x) {
      ln_1 = layernorm(dim = n_embd)
      attn = attention(dim = n_embd, heads = n_head, causal = true)
      forward {
        x = x + attn(ln_1(x))
        return x
      }
    }

:func:`parse_arch` returns the same plain data and :class:`SourceMap` as the YAML loader, so
validation, diagnostics and everything after are shared: both front ends give one ``Spec``.
Expressions are kept as their source text, exactly as YAML keeps them.
"""

from __future__ import annotations

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    ExprSyntaxError,
    _syntax_error,
    decode_string,
    deep_position,
    number_value,
    parser,
)
from archcc.parser.yaml_loader import SourceMap, SpecPath, _Text

_CONSTANTS = {"true": True, "false": False, "null": None}
_REPEAT_OPTIONS = {"times", "over", "args", "steps", "pick", "cycle", "when"}
_BLOCK_OPTIONS = {"args", "steps", "when"}


class DslError(ValueError):
    """A semantic mistake in a .arch file that the grammar cannot catch."""

    def __init__(self, message: str, token_or_meta, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint
        self.line = getattr(token_or_meta, "line", 1) or 1
        self.col = getattr(token_or_meta, "column", 1) or 1


@v_args(meta=True)
class _ToSpec(Transformer):
    """.arch parse tree -> the dict a YAML spec would load to, recording positions."""

    def __init__(self, file: str, text: str):
        super().__init__()
        # lines by \n only, as lark counts them (str.splitlines also breaks at a form feed
        # or U+2028, and a forward block after such a comment would be cut wrongly)
        self.file, self.text, self.lines = file, text, text.split("\n")
        self.where = SourceMap(file)

    # ------------------------------------------------------------------------ positions
    def _loc(self, item) -> SourceLoc:
        return SourceLoc(self.file, getattr(item, "line", 1) or 1,
                         getattr(item, "column", 1) or 1)

    def _key(self, path: SpecPath, item) -> None:
        self.where.keys[path] = self._loc(item)

    def _source(self, tree) -> str:
        meta = tree if isinstance(tree, Token) else tree.meta
        return self.text[meta.start_pos:meta.end_pos]

    # --------------------------------------------------------------------------- values
    def _value(self, tree, path: SpecPath):
        """A layer/param argument: numbers and booleans as values, expressions as text."""
        start = tree if isinstance(tree, Token) else tree.meta
        self.where.values[path] = _Text(self._loc(start), False, 0)
        kind = tree.data if isinstance(tree, Tree) else None
        if kind == "number":
            return number_value(tree.children[0])
        if kind == "neg" and isinstance(tree.children[0], Tree) \
                and tree.children[0].data == "number":
            return -self._value(tree.children[0], path)
        if kind == "name" and str(tree.children[0]) in _CONSTANTS:
            return _CONSTANTS[str(tree.children[0])]
        if kind == "string":
            return decode_string(tree.children[0])
        if kind == "list":
            items = [c for c in tree.children if c is not None]
            return [self._value(c, (*path, str(i))) for i, c in enumerate(items)]
        if kind == "call" and str(tree.children[0]) not in FUNCTIONS:  # min(a, b): an expr;
            # a nested layer otherwise: rope = rotary(theta = ...)
            return self._layer(tree, path)
        return self._source(tree)

    def _layer(self, call: Tree, path: SpecPath) -> dict:
        """``attention(dim = n_embd, heads = 12)`` -> ``{"op": "attention", ...}``."""
        func, arguments = call.children[0], call.children[1]
        args = [] if arguments is None else list(arguments.children)
        out: dict = {}
        positional = [a for a in args if not _is_keyword(a)]
        if str(func) == "repeat":
            return self._repeat(func, positional, [a for a in args if _is_keyword(a)], path)
        if str(func) == "block":
            return self._block_layer(func, positional, [a for a in args if _is_keyword(a)],
                                     path)
        if str(func) == "args":  # args(dim = 96, ...): a repeat's or block layer's arguments
            if positional:
                raise DslError("args(): arguments are named, e.g. dim = 96",
                               positional[0].meta, "write name = value")
            return self._keywords([a for a in args if _is_keyword(a)], path, func)
        else:
            if positional:
                raise DslError(f"{func}(): layer arguments are named, e.g. dim = 768",
                               positional[0].meta, "write name = value")
            out["op"] = str(func)
            self._key((*path, "op"), func)
        for keyword in (a for a in args if _is_keyword(a)):
            name, value = keyword.children
            if str(name) in out:
                raise DslError(f"{func}(): '{name}' given twice", name)
            self._key((*path, str(name)), name)
            out[str(name)] = self._value(value, (*path, str(name)))
        return out

    def _repeat(self, func, positional: list, keywords: list, path: SpecPath) -> dict:
        """``repeat(Block, times = n)``, by pattern ``repeat("AAFAAF", A = Attn, F = FFN)``
        (one-letter keywords are the pattern's blocks, as YAML's ``blocks: {A: Attn}``), or
        a stage loop ``repeat(Stage, over = [depths], dim = embed_dim * 2 ** i)``: keywords
        that are no repeat option are the block's arguments (``args = args(...)`` also)."""
        first = positional[0] if len(positional) == 1 else None
        if first is None:
            raise DslError("repeat takes the block name first: repeat(Block, times = n)", func,
                           'or a pattern with its letters: repeat("AAF", A = Attn, F = FFN)')
        out: dict = {}
        if isinstance(first, Tree) and first.data == "string":
            out["pattern"] = self._value(first, (*path, "pattern"))
            self._key((*path, "pattern"), first.meta)
        else:  # a block, or an expression choosing one per instance
            out["repeat"] = self._source(first)
            self._key((*path, "repeat"), first.meta)
            self.where.values[(*path, "repeat")] = _Text(self._loc(first.meta), False, 0)
        pattern = "pattern" in out
        for keyword in keywords:
            name, value = keyword.children
            letter = pattern and len(str(name)) == 1
            option = str(name) in _REPEAT_OPTIONS or pattern
            key = (*path, "blocks", str(name)) if letter else (*path, str(name)) if option \
                else (*path, "args", str(name))
            target = out.setdefault("blocks", {}) if letter else out if option \
                else out.setdefault("args", {})
            self._put(func, target, name, value, key)
        return out

    def _block_layer(self, func, positional: list, keywords: list, path: SpecPath) -> dict:
        """``block(Mlp, dim = dim, hidden = 4 * dim)``: one instance of a block as a layer;
        keywords other than steps and when are its arguments."""
        if len(positional) != 1:
            raise DslError("block takes the block name first: block(Mlp, dim = 64)", func)
        out: dict = {"block": self._source(positional[0])}
        self._key((*path, "block"), positional[0].meta)
        self.where.values[(*path, "block")] = _Text(self._loc(positional[0].meta), False, 0)
        for keyword in keywords:
            name, value = keyword.children
            option = str(name) in _BLOCK_OPTIONS
            key = (*path, str(name)) if option else (*path, "args", str(name))
            self._put(func, out if option else out.setdefault("args", {}), name, value, key)
        return out

    def _put(self, func, target: dict, name, value, key: SpecPath) -> None:
        if str(name) in target:
            raise DslError(f"{func}(): '{name}' given twice", name)
        self._key(key, name)
        target[str(name)] = self._value(value, key)

    def _keywords(self, keywords: list, path: SpecPath, func) -> dict:
        out: dict = {}
        for keyword in keywords:
            name, value = keyword.children
            self._put(func, out, name, value, (*path, str(name)))
        return out

    def _assignments(self, items, path: SpecPath, quoted: bool = False) -> dict:
        """``name = value`` lines; with ``quoted`` (params) a string stays a quoted literal
        (``layer_type = "basic"`` is the expression ``"basic"``, as YAML's '"basic"')."""
        out = {}
        for assign in items:
            targets, value = assign.children
            name = targets.children[0]
            if len(targets.children) != 1:
                raise DslError("one name per line here", targets.children[1])
            if str(name) in out:
                raise DslError(f"'{name}' is defined twice", name,
                               "each name may appear once in a section")
            self._key((*path, str(name)), name)
            out[str(name)] = self._value(value, (*path, str(name)))
            if quoted and isinstance(value, Tree) and value.data == "string":
                out[str(name)] = self._source(value)
        return out

    # ------------------------------------------------------------------------- sections
    def spec_file(self, meta, children):
        version, name, doc, *sections = children
        data: dict = {"archcc": number_value(version), "name": str(name)}
        self._key(("archcc",), version)
        self._key(("name",), name)
        if doc is not None:
            data["doc"] = decode_string(doc)
        for kind, key, value, where in sections:
            self.where.keys.setdefault((kind,), self._loc(where))
            if kind == "imports":
                data.setdefault("imports", []).extend(value)
            elif key is None:  # params, dims, model, extends, generate, reference, ... budget
                if kind in data:
                    raise DslError(f"'{kind}' appears twice", where)
                data[kind] = value
            else:
                section = data.setdefault(kind, {})
                if key in section:
                    raise DslError(f"'{key}' is defined twice in {kind}", where)
                section[key] = value
        return data

    def extends(self, meta, children):
        self._key(("extends",), meta)
        return "extends", None, decode_string(children[0]), meta

    def imports(self, meta, children):
        self.where.keys.setdefault(("imports",), self._loc(meta))
        first = sum(1 for path in self.where.keys if path[:1] == ("imports",)) - 1
        for i, token in enumerate(children):
            self._key(("imports", str(first + i)), token)
        return "imports", None, [decode_string(c) for c in children], meta

    def params(self, meta, children):
        self._key(("params",), meta)
        return "params", None, self._assignments(children, ("params",), quoted=True), meta

    def dims(self, meta, children):
        self._key(("dims",), meta)
        return "dims", None, self._assignments(children, ("dims",)), meta

    def generate(self, meta, children):
        self._key(("generate",), meta)
        return "generate", None, self._assignments(children, ("generate",)), meta

    def reference(self, meta, children):
        self._key(("reference",), meta)
        return "reference", None, self._assignments(children, ("reference",)), meta

    def parallel(self, meta, children):
        self._key(("parallel",), meta)
        out = {}
        for path, style in children:
            if path in out:
                raise DslError(f"'{path}' appears twice in parallel", meta)
            self._key(("parallel", path), style)
            out[path] = str(style)
        return "parallel", None, out, meta

    def init(self, meta, children):
        """``init { "h.*.attn.proj.weight" -> normal(0.02) }``: keys (a kind bare, a pattern
        quoted) to scheme text, kept as written, as YAML keeps it."""
        self._key(("init",), meta)
        out = {}
        for key, value in children:
            if key in out:
                raise DslError(f"'{key}' appears twice in init", meta)
            out[key] = value
        return "init", None, out, meta

    def init_rule(self, meta, children):
        token, value = children
        key = decode_string(str(token)) if token.type == "STRING" else str(token)
        self._key(("init", key), token)
        self.where.values[("init", key)] = _Text(self._loc(value.meta), False, 0)
        return key, self._source(value)

    def no_decay(self, meta, children):
        self._key(("no_decay",), meta)
        for i, token in enumerate(children):
            self._key(("no_decay", str(i)), token)
        return "no_decay", None, [decode_string(str(c)) for c in children], meta

    def budget(self, meta, children):
        self._key(("budget",), meta)
        out: dict = {}
        for name, value in children:
            if name in out:
                raise DslError(f"'{name}' appears twice in budget", meta)
            out[name] = value
        return "budget", None, out, meta

    def limit(self, meta, children):
        """``params <= 125M`` -> ``("params", "<= 125M")``; ``kv_cache_at(T = 8192) <= 1GiB``
        -> ``("kv_cache_at", {"T": 8192, "max": "1GiB"})``, as YAML writes them."""
        name, arguments, compare, number, suffix = children
        path = ("budget", str(name))
        self._key(path, name)
        size = f"{number}{suffix or ''}"
        if arguments is None:
            self.where.values[path] = _Text(self._loc(compare), False, 0)
            return str(name), f"{compare} {size}"
        if str(compare) != "<=":
            raise DslError(f"{name}(...) takes a maximum: {name}(T = 8192) <= 1GiB", compare)
        out = {}
        for keyword in arguments.children:
            if not _is_keyword(keyword):
                raise DslError(f"{name}() arguments are named, e.g. T = 8192", meta)
            key, value = keyword.children
            self._key((*path, str(key)), key)
            out[str(key)] = self._value(value, (*path, str(key)))
        self._key((*path, "max"), compare)
        self.where.values[(*path, "max")] = _Text(self._loc(number), False, 0)
        out["max"] = size
        return str(name), out

    def plan(self, meta, children):
        return decode_string(children[0]), children[1]

    def input(self, meta, children):
        name, dtype, *rest = children
        path = ("inputs", str(name))
        self._key(path, name)
        arguments = rest.pop() if rest and isinstance(rest[-1], Tree) \
            and rest[-1].data == "arguments" else None
        dims = [d for d in rest if d is not None]
        self._key((*path, "shape"), meta)
        out = {"shape": [self._value(d, (*path, "shape", str(i))) for i, d in enumerate(dims)],
               "dtype": str(dtype)}
        self._key((*path, "dtype"), dtype)
        for keyword in (arguments.children if arguments is not None else []):
            if not _is_keyword(keyword):
                raise DslError("input options are named, e.g. (high = vocab_size)", meta)
            key, value = keyword.children
            self._key((*path, str(key)), key)
            out[str(key)] = self._value(value, (*path, str(key)))
        return "inputs", str(name), out, meta

    def block(self, meta, children):
        name, *rest = children
        path = ("blocks", str(name))
        self._key(path, name)
        forward = rest.pop()  # None: a derived block keeps its base's forward
        inputs = [str(t) for t in rest if isinstance(t, Token) and t.type == "NAME"]
        docs = [t for t in rest if isinstance(t, Token) and t.type == "STRING"]
        bases = [t.children[0] for t in rest if isinstance(t, Tree) and t.data == "block_base"]
        params = [t for t in rest if isinstance(t, Tree) and t.data == "block_param"]
        layers = [t for t in rest if isinstance(t, Tree)
                  and t.data not in ("block_base", "block_param")]
        out: dict = {"inputs": inputs} if inputs else {}
        if params:
            self._key((*path, "args"), params[0].meta)
            out["args"] = {}
            for param in params:
                arg, default = param.children
                key = (*path, "args", str(arg))
                if str(arg) in out["args"]:
                    raise DslError(f"argument '{arg}' is given twice", arg)
                self._key(key, arg)
                out["args"][str(arg)] = None if default is None else self._value(default, key)
        if bases:
            self._key((*path, "extends"), bases[0])
            out["extends"] = str(bases[0])
        if docs:
            out["doc"] = decode_string(docs[0])
        out.update(self._body(path, layers, forward))
        return "blocks", str(name), out, meta

    def model(self, meta, children):
        *rest, forward = children
        self._key(("model",), meta)
        out = {"doc": decode_string(rest[0])} if rest and rest[0] is not None else {}
        layers = [t for t in rest if isinstance(t, Tree)]
        out.update(self._body(("model",), layers, forward))
        return "model", None, out, meta

    def _body(self, path: SpecPath, layers: list, forward: tuple[int, int, str] | None
              ) -> dict:
        if forward is None:  # a derived block: only the layers it changes
            if not layers:
                return {}
            self.where.keys[(*path, "layers")] = SourceLoc(self.file, layers[0].meta.line, 1)
            return {"layers": self._assignments(layers, (*path, "layers"))}
        line, indent, text = forward
        first = layers[0].meta.line if layers else line
        self.where.keys[(*path, "layers")] = SourceLoc(self.file, first, 1)
        out = {"layers": self._assignments(layers, (*path, "layers"))}
        self.where.keys[(*path, "forward")] = SourceLoc(self.file, line, 1)
        self.where.values[(*path, "forward")] = _Text(SourceLoc(self.file, line, 1), True,
                                                      indent)
        out["forward"] = text
        return out

    def forward(self, meta, children):
        """The statements' lines, dedented as YAML dedents a `|` block (positions kept)."""
        end = max((c.meta.end_line for c in children if isinstance(c, Tree)), default=meta.line)
        lines = self.lines[meta.line:end]
        indent = min((len(x) - len(x.lstrip(" ")) for x in lines if x.strip()), default=0)
        return meta.line, indent, "\n".join(x[indent:] for x in lines) + "\n"

    def checkpoint(self, meta, children):
        name = children[0]
        path = ("checkpoint", str(name))
        self._key(path, name)
        out: dict = {}
        for kind, key, values, where in children[1:]:
            self._key((*path, kind), where)
            if kind in ("transpose", "drop"):
                out.setdefault(kind, []).extend(values)
            else:
                out.setdefault(kind, {})[key] = values
        return "checkpoint", str(name), out, meta

    def _rule(kind: str, single: bool = False):  # noqa: N805 - a rule factory, not a method
        def build(self, meta, children):
            strings = [decode_string(c) for c in children]
            if kind in ("transpose", "drop"):
                return kind, None, strings, meta
            return kind, strings[0], strings[1] if single else strings[1:], meta

        return build

    rename = _rule("rename", single=True)
    transpose = _rule("transpose")
    concat = _rule("concat")
    drop = _rule("drop")

    def split(self, meta, children):
        """``split "a.qkv" -> "q", "k", "v"``, optionally ``(sizes = [...], groups = n)``."""
        arguments = children[-1] if not isinstance(children[-1], Token) else None
        strings = [decode_string(str(c)) for c in children if isinstance(c, Token)]
        if arguments is None:
            return "split", strings[0], strings[1:], meta
        rule: dict = {"into": strings[1:]}
        for keyword in arguments.children:
            if not _is_keyword(keyword):
                raise DslError("split options are named: sizes = [...], groups = n",
                               keyword.meta)
            name, value = keyword.children
            rule[str(name)] = self._value(value, ("checkpoint", str(name)))
        return "split", strings[0], rule, meta


def _is_keyword(tree) -> bool:
    return isinstance(tree, Tree) and tree.data == "keyword"


def _is_name(tree) -> bool:
    return isinstance(tree, Tree) and tree.data == "name"


def parse_arch(file: str, text: str) -> tuple[dict, SourceMap]:
    """Parse a .arch spec into YAML-equivalent data plus positions; errors are located.

    A leading byte order mark is dropped (editors hide it; columns are counted without it)."""
    text = text.removeprefix("\ufeff")
    try:
        tree = parser().parse(text if text.endswith("\n") else text + "\n", start="spec_file")
    except UnexpectedInput as exc:
        err: ExprSyntaxError = _syntax_error(text, exc, "spec_file")
        raise ArchccError(Diagnostic(SourceLoc(file, err.pos.line, err.pos.col), "",
                                     err.message, err.hint)) from None
    deep = deep_position(tree, MAX_DEPTH)  # the Transformer below recurses once per level
    if deep is not None:
        raise ArchccError(Diagnostic(SourceLoc(file, deep.line, deep.col), "",
                                     "value nests too deeply", "split it into named params"))
    transformer = _ToSpec(file, text)
    try:
        return transformer.transform(tree), transformer.where
    except VisitError as exc:
        e = exc.orig_exc
        if isinstance(e, DslError):
            raise ArchccError(Diagnostic(SourceLoc(file, e.line, e.col), "", e.message,
                                         e.hint)) from None
        if isinstance(e, ExprSyntaxError):  # a bad number or string literal
            raise ArchccError(Diagnostic(SourceLoc(file, e.pos.line, e.pos.col), "",
                                         e.message, e.hint)) from None
        raise
