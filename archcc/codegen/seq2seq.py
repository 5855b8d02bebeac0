"""A seq2seq model's forward graph as ``encode`` + ``decode`` methods (the generation facet).

Generation runs the encoder once and steps the decoder, so the model class gets both halves
as methods, and ``forward`` becomes their composition::

    def forward(self, src, tgt):              def encode(self, src):
        memory = self.encode(src)                 memory = ...  # nodes not reading tgt
        return self.decode(tgt, memory)           return memory

    def decode(self, tgt, memory, cache=None):    # nodes reading tgt; memory is an argument

The split is by dependency on the stepped input: the decoder side is what reads it; the
values it reads from the other side (the memory, an encoder mask) become ``decode``'s
arguments. Parameter constants and attributes are repeated where both halves need them.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcc.ir.graph import ModuleIR, add_node
from archcc.lazy import nx

FREE = {"const", "get_attr"}  # no inputs: copied into whichever half reads them


@dataclass
class Halves:
    encode: ModuleIR
    decode: ModuleIR
    encoder_inputs: list[str]  # forward argument names
    memory: list[str]  # what encode returns and decode takes after the token input
    passed: list[str]  # forward arguments decode reads as they are (an encoder mask)
    names: dict[str, str]  # node id -> the name it has in decode (memory and passed)


def split(model: ModuleIR, token: str) -> Halves:
    """Split ``model``'s forward at the stepped input named ``token``."""
    g = model.graph
    inputs = {g.nodes[n]["attrs"]["name"]: n for n in model.inputs}
    cache = inputs.get("cache")
    decoder = nx.descendants(g, inputs[token]) | {inputs[token]}
    decoder.discard(g.graph["output"])
    encoder = set(g) - decoder - {g.graph["output"], cache}
    boundary = [n for n in g if n in encoder and g.nodes[n]["op"] not in FREE
                and any(s in decoder for s in g.successors(n))]
    computed = [n for n in boundary if g.nodes[n]["op"] != "input"]
    passed = [n for n in boundary if g.nodes[n]["op"] == "input"]
    names = _unique([value_name(g, n) for n in computed])
    enc_inputs = [n for n in model.inputs if n not in (inputs[token], cache)]
    encode = _half(model, "encode", encoder, enc_inputs, computed, {})
    dec_nodes = decoder | {n for n in encoder if g.nodes[n]["op"] in FREE
                           and any(s in decoder for s in g.successors(n))}
    dec_nodes |= set(boundary) | ({cache} if cache else set())
    decode_inputs = [inputs[token], *computed, *passed] + ([cache] if cache else [])
    decode = _half(model, "decode", dec_nodes, decode_inputs, [g.graph["output"]],
                   dict(zip(computed, names, strict=True)))
    passed_names = [value_name(g, n) for n in passed]
    return Halves(encode, decode, [g.nodes[n]["attrs"]["name"] for n in enc_inputs], names,
                  passed_names, dict(zip(computed + passed, names + passed_names,
                                         strict=True)))


def _unique(names: list[str]) -> list[str]:
    """``["memory", "memory"]`` -> ``["memory", "memory_1"]``: decode's arguments differ."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def value_name(g: nx.DiGraph, node: str) -> str:
    """The name a value crossing from encode to decode goes by: its input or variable name."""
    data = g.nodes[node]
    return data["attrs"]["name"] if data["op"] == "input" else data["var"] or "memory"


def _half(model: ModuleIR, name: str, nodes: set[str], inputs: list[str], outputs: list[str],
          as_inputs: dict[str, str]) -> ModuleIR:
    """A copy of ``nodes`` as one method: ``as_inputs`` nodes become its arguments."""
    g = model.graph.subgraph(nodes | set(outputs)).copy()
    g.graph.update(name=model.graph.graph["name"], inputs=list(inputs), counter={})
    for node, arg in as_inputs.items():
        for src in list(g.predecessors(node)):
            g.remove_edge(src, node)
        g.nodes[node].update(op="input", inputs=[], attrs={"name": arg}, var=arg, stmt=None,
                             note=None)
    if model.graph.graph["output"] in outputs:  # decode ends where forward ends
        g.graph["output"] = model.graph.graph["output"]
    else:  # encode returns the values decode reads
        g.graph["output"] = add_node(g, "output", outputs, base=f"{name}_output")
    return ModuleIR(model.name, model.kind, g, model.submodules, display=model.display)
