"""A decoder config's rotary settings -> the ``rope: {op: rotary, ...}`` facet and its params.

Reads transformers 5's ``rope_parameters`` and the older spellings hub configs still carry
(``rope_theta`` with ``rope_scaling: {type: ...}``, Phi-3's top-level
``partial_rotary_factor``, GPT-NeoX's ``rotary_emb_base`` and ``rotary_pct``); values land in
``params`` (``rope_theta``, ``rope_factor``, ...) so the generated Config carries them::

    rope_facet(cfg, PARTS["llama"], params)
    # {"op": "rotary", "theta": "rope_theta", "scaling": "llama3", "factor": "rope_factor", ...}
"""

from __future__ import annotations

from archcc.importers.config import ConfigFile
from archcc.importers.decoder_parts import Parts, default

SCALINGS = {"default": "none", "linear": "linear", "dynamic": "dynamic", "llama3": "llama3",
            "yarn": "yarn"}
# spec field -> (HF rope_parameters key, param name)
FIELDS = {"factor": ("factor", "rope_factor"),
          "low_freq_factor": ("low_freq_factor", "rope_low_freq_factor"),
          "high_freq_factor": ("high_freq_factor", "rope_high_freq_factor"),
          "original_max_positions": ("original_max_position_embeddings",
                                     "rope_original_max_position_embeddings"),
          "beta_fast": ("beta_fast", "rope_beta_fast"),
          "beta_slow": ("beta_slow", "rope_beta_slow")}
NEEDS = {"none": (), "linear": ("factor",), "dynamic": ("factor",),
         "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_positions"),
         "yarn": ("factor", "original_max_positions", "beta_fast", "beta_slow")}


def _parameters(cfg: ConfigFile, parts: Parts) -> tuple[dict, dict]:
    """The rope settings as one dict (HF's standard keys) and, for each, the config key it
    came from (errors point there)."""
    if isinstance(cfg.get("rope_parameters"), dict):
        out = dict(cfg.get("rope_parameters"))
        origin = {key: f"rope_parameters.{key}" for key in out}
    else:
        scaling = cfg.get("rope_scaling")
        out = dict(scaling) if isinstance(scaling, dict) else {}
        origin = {key: f"rope_scaling.{key}" for key in out}
        if "type" in out and "rope_type" not in out:
            out["rope_type"], origin["rope_type"] = out["type"], "rope_scaling.type"
        for legacy, key in (("rope_theta", "rope_theta"), ("rotary_emb_base", "rope_theta"),
                            ("partial_rotary_factor", "partial_rotary_factor"),
                            ("rotary_pct", "partial_rotary_factor")):
            if cfg.has(legacy) and key not in out:
                out[key], origin[key] = cfg.get(legacy), legacy
    if parts.partial == "rotary_pct" and "partial_rotary_factor" not in out:
        out["partial_rotary_factor"] = default(parts, "rotary_pct")
    if cfg.has("original_max_position_embeddings"):  # Phi-3 keeps it at the top level
        out["original_max_position_embeddings"] = cfg.get("original_max_position_embeddings")
        origin["original_max_position_embeddings"] = "original_max_position_embeddings"
    return out, origin


def rope_facet(cfg: ConfigFile, parts: Parts, params: dict) -> dict:
    """The attention's ``rope:`` entry; the values it names are added to ``params``."""
    rp, where = _parameters(cfg, parts)
    kind = rp.get("rope_type", "default")
    if kind not in SCALINGS:
        raise cfg.error(where.get("rope_type", "rope_parameters"),
                        f"rope type {kind!r} is not supported (supported: "
                        f"{', '.join(SCALINGS)})",
                        "longrope (Phi-3 128k) and the other types have no rotary class yet")
    scaling = SCALINGS[kind]
    params["rope_theta"] = _number(cfg, where, rp, "rope_theta", default(parts, "rope_theta"))
    rope = {"op": "rotary", "theta": "rope_theta"}
    _partial(cfg, parts, where, rp, params, rope)
    if scaling == "none":
        return rope
    rope["scaling"] = scaling
    max_pos = cfg.size("max_position_embeddings", default(parts, "max_position_embeddings"))
    if scaling in ("llama3", "yarn"):  # HF: the original context defaults to max_pos
        rp.setdefault("original_max_position_embeddings", max_pos)
    if scaling == "yarn" and rp.get("factor") is None:
        rp["factor"] = max_pos / rp["original_max_position_embeddings"]
    if scaling == "yarn":  # `or`: HF treats 0 and None alike
        rp["beta_fast"], rp["beta_slow"] = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1
    for field in NEEDS[scaling]:
        key, param = FIELDS[field]
        if rp.get(key) is None:
            raise cfg.error(where.get("rope_type", "rope_parameters"),
                            f"rope type {kind!r} needs {key}", None)
        value = rp[key]
        params[param] = int(value) if field == "original_max_positions" else \
            _number(cfg, where, rp, key, None)
        rope[field] = param
    if scaling == "dynamic":
        params["max_position_embeddings"] = max_pos
        rope["max_positions"] = "max_position_embeddings"
    if scaling == "yarn":
        _yarn_extras(cfg, where, rp, params, rope)
    return rope


def _number(cfg: ConfigFile, where: dict, rp: dict, key: str, fallback) -> float:
    value = rp.get(key, fallback)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise cfg.error(where.get(key, "rope_parameters"),
                        f"{key}: expected a number, got {value!r}")
    return float(value)


def _partial(cfg: ConfigFile, parts: Parts, where: dict, rp: dict, params: dict,
             rope: dict) -> None:
    """Partial rotary, for the families that read it; elsewhere it must be 1."""
    factor = _number(cfg, where, rp, "partial_rotary_factor", 1.0)
    if parts.partial is None:
        if factor != 1.0:
            raise cfg.error(where.get("partial_rotary_factor", "rope_parameters"),
                            f"partial_rotary_factor = {factor}: {parts.model} rotates "
                                   "all of each head", "drop it, or import as phi3/gpt_neox")
        return
    params[parts.partial] = factor
    if factor != 1.0:
        rope["dim"] = f"int(head_dim * {parts.partial})"


def _yarn_extras(cfg: ConfigFile, where: dict, rp: dict, params: dict, rope: dict) -> None:
    """YaRN's cos/sin factor (explicit, from mscale / mscale_all_dim, else the op's default
    0.1 ln(factor) + 1) and ``truncate``."""
    import math

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    factor = params["rope_factor"]
    attention = rp.get("attention_factor")
    if attention is None and rp.get("mscale") and rp.get("mscale_all_dim"):
        attention = mscale(factor, rp["mscale"]) / mscale(factor, rp["mscale_all_dim"])
    if attention is not None:
        params["rope_attention_factor"] = float(attention)
        rope["attention_factor"] = "rope_attention_factor"
    if rp.get("truncate", True) is False:
        rope["truncate"] = False
