"""A decoder family's mixture of experts (``op: moe``), from the ``Experts`` part of its row.

Mixtral and Qwen2-MoE are LLaMA-style decoders whose MLP is a sparse mixture of experts;
the family row (:mod:`.decoder_parts`) names the config keys that size it, and this module
puts the layer in the block, picks the layers that have it (Qwen2-MoE keeps dense MLPs in
``mlp_only_layers`` and off the ``decoder_sparse_step``) and maps the expert tensors::

    mixture(cfg, PARTS["qwen2_moe"], params, blocks, repeat, "silu")
    # blocks["Block"]["layers"]["mlp"] == {"op": "moe", ..., "shared_hidden": ...}
    # repeat == {"repeat": "Dense", "cycle": ["Block"], ...} for decoder_sparse_step 2
"""

from __future__ import annotations

import copy

from archcc.importers.config import ConfigFile
from archcc.importers.decoder_parts import Experts, Parts, default


def refuse(cfg: ConfigFile, parts: Parts) -> None:
    """Expert settings that change the model and that ``op: moe`` does not build."""
    experts = parts.experts
    if cfg.number("router_jitter_noise", 0.0) != 0.0:
        raise cfg.error("router_jitter_noise", "router jitter (training noise on the router's "
                        "input) is not built", "set it to 0.0 (inference is unaffected)")
    if experts.qkv_bias_key and not cfg.require(experts.qkv_bias_key, True, (True, False),
                                                "a true/false flag"):
        raise cfg.error(experts.qkv_bias_key, f"{parts.model} without q/k/v biases is not "
                        "built", "this family's attention always has them")
    if experts.no_window and (cfg.get("use_sliding_window", False) or "sliding_attention" in
                              (cfg.get("layer_types") or [])):
        key = "use_sliding_window" if cfg.get("use_sliding_window", False) else "layer_types"
        raise cfg.error(key, f"sliding-window layers of {parts.model} are not built",
                        "import it with use_sliding_window false (the released models)")


def moe_layer(cfg: ConfigFile, experts: Experts, parts: Parts, params: dict, act: str) -> dict:
    """The ``op: moe`` entry; its sizes join ``params`` under their HF names."""
    for key in (experts.count, experts.hidden, "num_experts_per_tok",
                *([experts.shared] if experts.shared else [])):
        params[key] = cfg.size(key, default(parts, key))
    params["router_aux_loss_coef"] = cfg.number("router_aux_loss_coef",
                                                default(parts, "router_aux_loss_coef"))
    if params["num_experts_per_tok"] > params[experts.count]:
        raise cfg.error("num_experts_per_tok", f"{params['num_experts_per_tok']} experts per "
                        f"token of {params[experts.count]}", f"at most {experts.count}")
    layer = {"op": "moe", "dim": "hidden_size", "hidden": experts.hidden,
             "experts": experts.count, "top_k": "num_experts_per_tok", "act": act}
    if experts.normalize is not None:
        layer["normalize"] = cfg.require(experts.normalize, default(parts, experts.normalize),
                                         (True, False), "a true/false flag")
    if experts.shared:
        layer["shared_hidden"] = experts.shared
    return layer


def sparse_layers(cfg: ConfigFile, parts: Parts, params: dict) -> list[bool]:
    """Which layers have the mixture: all, or (Qwen2-MoE) those off ``mlp_only_layers`` with
    ``(i + 1) % decoder_sparse_step == 0``, when there are experts at all."""
    layers, experts = params["num_hidden_layers"], parts.experts
    if not experts.sparse_step:
        return [True] * layers
    dense = cfg.get("mlp_only_layers") or []
    if not isinstance(dense, list) or not all(isinstance(i, int) for i in dense):
        raise cfg.error("mlp_only_layers", "expected a list of layer indices", None)
    step = cfg.size("decoder_sparse_step", 1)
    count = cfg.get(experts.count, default(parts, experts.count))
    return [count != 0 and i not in dense and (i + 1) % step == 0 for i in range(layers)]


def mixture(cfg: ConfigFile, parts: Parts, params: dict, blocks: dict, repeat: dict,
            act: str) -> dict:
    """Put the mixture in ``Block`` (a ``Dense`` copy keeps the MLP where the family has
    one); returns the model's repeat: every layer, a cycle with the sparse step's period, or
    a pattern by layer."""
    experts = parts.experts
    refuse(cfg, parts)
    sparse = sparse_layers(cfg, parts, params)
    if not any(sparse):
        return repeat  # no experts anywhere: the dense decoder
    dense_mlp = blocks["Block"]["layers"]["mlp"]
    blocks["Block"]["layers"]["mlp"] = moe_layer(cfg, experts, parts, params, act)
    if all(sparse):
        return repeat
    if repeat != {"repeat": "Block", "times": "num_hidden_layers"}:
        raise cfg.error("mlp_only_layers", "layers that differ both in their window and in "
                        "their MLP are not built", None)
    dense = copy.deepcopy(blocks["Block"])
    dense["doc"] = "The same layer with a dense MLP instead of the experts."
    dense["layers"]["mlp"] = dense_mlp
    blocks["Dense"] = dense
    period = cfg.size("decoder_sparse_step", 1)
    if sparse == [(i + 1) % period == 0 for i in range(len(sparse))]:
        return {"repeat": "Dense", "cycle": ["Dense"] * (period - 2) + ["Block"],
                "times": "num_hidden_layers"}
    return {"pattern": "".join("S" if s else "D" for s in sparse),
            "blocks": {"S": "Block", "D": "Dense"}}


def checkpoint_rules(parts: Parts, rename: dict[str, str], blocks: dict) -> dict[str, str]:
    """The family's renames with the router's and the experts' (and the shared expert's)
    first; the dense MLP's stay only if a layer keeps one."""
    p, m = parts.prefix, "layers.{i}.mlp"
    if blocks["Block"]["layers"]["mlp"]["op"] != "moe":
        return rename
    out = {f"{p}.{m}.gate": f"{m}.router", f"{p}.{m}.experts.gate_up_proj": f"{m}.gate_up",
           f"{p}.{m}.experts.down_proj": f"{m}.down"}
    module, *names = parts.experts.files  # files keep one tensor per expert: stacked on load
    f = f"layers.{{i}}.{module}"
    out[f"{p}.{f}.gate"] = f"{m}.router"
    out.update({f"{p}.{f}.experts.{{e}}.{name}": f"{m}.experts.{{e}}.{ours}"
                for name, ours in zip(names, ("gate", "up", "down"), strict=True)})
    if parts.experts.shared:
        out.update({f"{p}.{m}.shared_expert.{n}_proj": f"{m}.shared.{n}"
                    for n in ("gate", "up", "down")})
        out[f"{p}.{m}.shared_expert_gate"] = f"{m}.shared_gate"
    dense = {f"{p}.{m}.{n}_proj" for n in ("gate", "up", "down")} if "Dense" not in blocks \
        else set()
    return {**out, **{k: v for k, v in rename.items() if k not in dense}}
