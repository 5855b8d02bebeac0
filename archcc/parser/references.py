"""The only reference implementations a spec may name (for `archcc bench` and parity).

A spec's ``reference: {library: transformers, model: GPT2LMHeadModel, layout: hf}`` is
looked up here; the class and its config class are then fetched from the library by these
fixed names. Nothing a spec writes is imported or executed: a name not in this table is a
located spec error.
"""

from __future__ import annotations

# library -> model class -> its config class (all in the library's top-level namespace)
REFERENCE_MODELS: dict[str, dict[str, str]] = {
    "transformers": {
        "GPT2Model": "GPT2Config",
        "GPT2LMHeadModel": "GPT2Config",
        "BertModel": "BertConfig",
        "RobertaModel": "RobertaConfig",
        "DistilBertModel": "DistilBertConfig",
        "ViTModel": "ViTConfig",
        "LlamaModel": "LlamaConfig",
        "LlamaForCausalLM": "LlamaConfig",
        "MistralModel": "MistralConfig",
        "MistralForCausalLM": "MistralConfig",
        "MixtralForCausalLM": "MixtralConfig",
        "Qwen2MoeForCausalLM": "Qwen2MoeConfig",
        "T5Model": "T5Config",
        "BartModel": "BartConfig",
        "CLIPVisionModel": "CLIPVisionConfig",
        "WhisperModel": "WhisperConfig",
        "ConvNextForImageClassification": "ConvNextConfig",
        "ResNetForImageClassification": "ResNetConfig",
        "AlbertForMaskedLM": "AlbertConfig",
    },
}
