"""Models that return a stepped decoder's logits: their ``encode`` / ``decode`` and the
module-level ``greedy_decode`` that encodes once.

The decoder class itself is its op's (:mod:`archcc.ops.rnn_decoder`); this module only
reads the model around it::

    def greedy_decode(model, src, src_len, max_len=50, start_token=1, eos_token=2):
        memory, h0 = model.encode(src, src_len)
        return model.decoder.greedy(memory, h0, max_len=max_len, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from archcc.ir.graph import ModuleIR


@dataclass
class GreedyView:
    """``greedy_decode(model, <sources>, ...)``: encode once, then the decoder's greedy()."""

    params: str
    encode: str
    call: str
    sources: str


def recurrent_token(model: ModuleIR, modules: dict[str, ModuleIR]) -> str | None:
    """The target input of a model that returns ``decoder(tgt, ...)`` of a stepped decoder
    class (one whose facets say it has ``greedy``: ``op: rnn_decoder``).

    Such a model gets ``encode`` / ``decode`` methods and a ``greedy_decode`` function;
    a model that does anything with the decoder's logits before returning them does not.
    """
    call = _returned_call(model)
    sub = model.submodules.get(call["attrs"]["target"]) if call is not None else None
    cls = modules.get(sub.cls) if sub is not None and sub.cls else None
    if cls is None or not cls.facets.get("greedy"):
        return None
    if all(model.graph.nodes[n]["op"] == "input" for n in call["inputs"][1:]):
        return None  # nothing to encode: the memory is an input (the decoder class alone)
    first = model.graph.nodes[call["inputs"][0]]
    return first["attrs"]["name"] if first["op"] == "input" else None


def _returned_call(model: ModuleIR) -> dict | None:
    """The ``call`` node the forward returns as its only value, if it returns one."""
    g = model.graph
    returned = g.nodes[g.graph["output"]]["inputs"]
    if len(returned) != 1 or g.nodes[returned[0]]["op"] != "call":
        return None
    return g.nodes[returned[0]]


def name_decoder_inputs(model: ModuleIR, program_modules: dict) -> None:
    """Give unnamed values the decoder reads its parameter's name (``h0``, ``c0``), so
    ``encode`` returns ``memory, h0, c0`` rather than anonymous temporaries."""
    g, call = model.graph, _returned_call(model)
    cls = program_modules[model.submodules[call["attrs"]["target"]].cls]
    params = list(cls.inputs)
    taken = {d["var"] for _, d in g.nodes(data=True) if d["var"]}
    for node, param in zip(call["inputs"], params, strict=False):
        name = cls.graph.nodes[param]["attrs"]["name"]
        if g.nodes[node]["var"] is None and g.nodes[node]["op"] != "input" and name not in taken:
            g.nodes[node]["var"] = name
            taken.add(name)


def greedy_view(model, halves, f: dict) -> GreedyView:
    """The call of the decoder's ``greedy`` with the encoder's outputs by name."""
    call = _returned_call(model)
    kwargs = call["attrs"]["kwargs"]
    names = [halves.names[n] for n in call["inputs"][1:]]
    positional = names[:len(names) - len(kwargs)]
    keywords = [f"{k}={v}" for k, v in zip(kwargs, names[len(positional):], strict=True)]
    sources = ", ".join(halves.encoder_inputs)
    limits = "max_len=max_len, start_token=start_token, eos_token=eos_token"
    return GreedyView(
        params=f"{sources}, max_len=50, start_token={f['start_token']}, "
               f"eos_token={f['eos_token']}",
        encode=f"{', '.join(halves.memory)} = model.encode({sources})",
        call=f"model.{call['attrs']['target']}.greedy("
             f"{', '.join([*positional, *keywords, limits])})",
        sources=sources)
