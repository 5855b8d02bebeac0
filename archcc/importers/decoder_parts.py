"""What each Hugging Face decoder family is made of, as data: the parts :mod:`.decoder`
assembles a spec from.

A family is a row, not code: its module names, its norm and its numerics, the layer
wiring, how q/k/v and the MLP are stored, which config fields it reads and their defaults.
Another decoder made of the same parts imports by adding a row (OLMo-2 is one)::

    PARTS["olmo2"].norms == "post"        # x + norm(attn(x)): no input norm
    PARTS["gpt_neox"].qkv == "per_head"   # query_key_value rows: per head [q | k | v]

Defaults are the transformers config classes' (older config.json files leave them out);
``tests/parity/test_llm_import.py`` checks them against the installed transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Experts:
    """A sparse mixture of experts in the MLP's place (``op: moe``): the config keys that
    size it, and what the family adds (:mod:`.decoder_experts` builds it)."""

    count: str = "num_local_experts"
    """The number of experts (Qwen2-MoE: ``num_experts``)."""
    hidden: str = "intermediate_size"
    """Each expert's inner width (Qwen2-MoE: ``moe_intermediate_size``)."""
    normalize: str | None = None
    """The flag that renormalises the top-k weights (``norm_topk_prob``); None: always."""
    shared: str | None = None
    """The width of a sigmoid-gated shared expert (``shared_expert_intermediate_size``)."""
    sparse_step: bool = False
    """Qwen2-MoE: ``decoder_sparse_step`` and ``mlp_only_layers`` keep dense MLPs."""
    qkv_bias_key: str | None = None
    """A flag that can turn the q/k/v biases off (Qwen2-MoE's ``qkv_bias``; only on builds)."""
    no_window: bool = False
    """The family's sliding-window layers are refused rather than built."""
    files: tuple[str, str, str, str] = ("block_sparse_moe", "w1", "w3", "w2")
    """How checkpoint files name one expert: the MLP's module, then its gate, up and down
    (transformers stacks them on load; the generated class does too)."""


@dataclass(frozen=True)
class Parts:
    """The parts of one ``model_type``; HF names are its module names."""

    model: str = "LlamaForCausalLM"
    """The transformers class whose state_dict the spec loads (for docs and errors)."""
    prefix: str = "model"
    """The backbone's attribute in that class (``gpt_neox`` for GPT-NeoX)."""
    embed: str = "embed_tokens"
    attn: str = "self_attn"
    final_norm: str = "norm"
    norm: str = "rms"
    """``rms`` (RMSNorm, float32 as HF computes it) or ``layernorm`` (with bias)."""
    upcast: str = "norm"
    """RMSNorm numerics: ``norm`` casts back before the weight (LLaMA), ``all`` after it."""
    unit_offset: bool = False
    """Gemma's RMSNorm scales by (1 + weight)."""
    embed_scale: bool = False
    """Gemma multiplies the embeddings by sqrt(hidden_size)."""
    norms: str = "pre"
    """Layer wiring: ``pre`` (input_layernorm, post_attention_layernorm), ``sandwich``
    (Gemma 2: a norm before and after attention and MLP), ``post`` (OLMo-2: after only),
    ``neox`` (GPT-NeoX: parallel or sequential, by ``use_parallel_residual``)."""
    qkv: str = "separate"
    """``separate`` q_proj/k_proj/v_proj, ``fused`` qkv_proj rows [q | k | v] (Phi-3) or
    ``per_head`` query_key_value rows per head [q | k | v] (GPT-NeoX)."""
    mlp: str = "gated"
    """``gated`` gate_proj/up_proj/down_proj, ``gated_fused`` gate_up_proj (Phi-3) or
    ``plain`` dense_h_to_4h/dense_4h_to_h (GPT-NeoX)."""
    bias: str = "attention_bias"
    """Which biases: ``attention_bias`` (q, k, v, o; LLaMA's ``mlp_bias`` too), ``qkv`` (Qwen2:
    q, k, v always), ``none`` (Mistral, Phi-3)."""
    qk_norm: str = "none"
    window: str = "none"
    """``none``, ``all`` (every layer when sliding_window is set: Mistral, Phi-3) or
    ``layer_types`` (Qwen2/3: from max_window_layers; Gemma 2: even layers)."""
    partial: str | None = None
    """The config key of partial rotary (``partial_rotary_factor``, ``rotary_pct``)."""
    act_key: str = "hidden_act"
    softcap: bool = False
    """Gemma 2: attention and final logit soft-capping, query_pre_attn_scalar."""
    head_dim_key: bool = True
    """Whether the family reads ``head_dim`` from the config (GPT-NeoX does not)."""
    experts: Experts | None = None
    """A mixture of experts in place of the MLP (Mixtral, Qwen2-MoE)."""
    defaults: dict = field(default_factory=dict)
    """Config defaults where they differ from LLaMA's (``DEFAULTS``)."""


# LlamaConfig's defaults; a family's own override them
DEFAULTS = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": None,
            "head_dim": None, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
            "sliding_window": None, "pad_token_id": None, "eos_token_id": 2,
            "initializer_range": 0.02}

PARTS: dict[str, Parts] = {
    "llama": Parts(),
    "mistral": Parts("MistralForCausalLM", bias="none", window="all", defaults={
        "intermediate_size": 14336, "num_key_value_heads": 8,
        "max_position_embeddings": 4096 * 32, "sliding_window": 4096}),
    "qwen2": Parts("Qwen2ForCausalLM", bias="qkv", window="layer_types", head_dim_key=True,
                   defaults={"vocab_size": 151936, "intermediate_size": 22016,
                             "num_key_value_heads": 32, "max_position_embeddings": 32768,
                             "sliding_window": 4096, "use_sliding_window": False,
                             "max_window_layers": 28, "eos_token_id": None}),
    "qwen3": Parts("Qwen3ForCausalLM", qk_norm="head", window="layer_types", defaults={
        "vocab_size": 151936, "intermediate_size": 22016, "num_key_value_heads": 32,
        "head_dim": 128, "max_position_embeddings": 32768, "sliding_window": 4096,
        "use_sliding_window": False, "max_window_layers": 28, "eos_token_id": None}),
    "gemma": Parts("GemmaForCausalLM", upcast="all", unit_offset=True, embed_scale=True,
                   defaults={"vocab_size": 256000, "hidden_size": 3072,
                             "intermediate_size": 24576, "num_hidden_layers": 28,
                             "num_attention_heads": 16, "num_key_value_heads": 16,
                             "head_dim": 256, "max_position_embeddings": 8192,
                             "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True,
                             "pad_token_id": 0, "eos_token_id": 1}),
    "gemma2": Parts("Gemma2ForCausalLM", upcast="all", unit_offset=True, embed_scale=True,
                    norms="sandwich", window="layer_types", act_key="hidden_activation",
                    softcap=True, defaults={
                        "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216,
                        "num_hidden_layers": 26, "num_attention_heads": 8,
                        "num_key_value_heads": 4, "head_dim": 256,
                        "max_position_embeddings": 8192,
                        "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
                        "sliding_window": 4096, "query_pre_attn_scalar": 256,
                        "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
                        "pad_token_id": 0, "eos_token_id": 1}),
    "phi3": Parts("Phi3ForCausalLM", qkv="fused", mlp="gated_fused", bias="none",
                  window="all", partial="partial_rotary_factor", defaults={
                      "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192,
                      "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
                      "pad_token_id": 32000, "eos_token_id": 32000}),
    "gpt_neox": Parts("GPTNeoXForCausalLM", prefix="gpt_neox", embed="embed_in",
                      attn="attention", final_norm="final_layer_norm", norm="layernorm",
                      norms="neox", qkv="per_head", mlp="plain", partial="rotary_pct",
                      head_dim_key=False, defaults={
                          "vocab_size": 50432, "hidden_size": 6144,
                          "intermediate_size": 24576, "num_hidden_layers": 44,
                          "num_attention_heads": 64, "layer_norm_eps": 1e-5,
                          "hidden_act": "gelu", "attention_bias": True,
                          "use_parallel_residual": True, "rotary_pct": 0.25}),
    "mixtral": Parts("MixtralForCausalLM", bias="none", window="all", experts=Experts(),
                     defaults={"intermediate_size": 14336, "num_key_value_heads": 8,
                               "max_position_embeddings": 4096 * 32, "rms_norm_eps": 1e-5,
                               "rope_theta": 1e6, "num_local_experts": 8,
                               "num_experts_per_tok": 2, "router_aux_loss_coef": 0.001,
                               "router_jitter_noise": 0.0}),
    "qwen2_moe": Parts("Qwen2MoeForCausalLM", bias="qkv", experts=Experts(
        "num_experts", "moe_intermediate_size", normalize="norm_topk_prob",
        shared="shared_expert_intermediate_size", sparse_step=True, qkv_bias_key="qkv_bias",
        no_window=True, files=("mlp", "gate_proj", "up_proj", "down_proj")), defaults={
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632,
            "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16,
            "max_position_embeddings": 32768, "sliding_window": 4096,
            "use_sliding_window": False, "max_window_layers": 28, "eos_token_id": None,
            "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
            "shared_expert_intermediate_size": 5632, "norm_topk_prob": False,
            "decoder_sparse_step": 1, "router_aux_loss_coef": 0.001, "qkv_bias": True}),
    "olmo2": Parts("Olmo2ForCausalLM", upcast="all", norms="post", qk_norm="full", defaults={
        "vocab_size": 50304, "intermediate_size": 11008, "rms_norm_eps": 1e-5,
        "pad_token_id": 1, "eos_token_id": 50279}),
}


def default(parts: Parts, key: str):
    """The family's default for a config key (``KeyError`` for keys it does not have)."""
    return parts.defaults[key] if key in parts.defaults else DEFAULTS[key]
