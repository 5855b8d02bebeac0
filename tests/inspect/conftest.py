"""Small sizes of the example specs, so real (allocated) models stay cheap to build."""

from __future__ import annotations

_SMALL = {
    "gpt2": {"n_layer": 3, "n_embd": 64, "n_head": 4, "vocab_size": 101, "n_positions": 64},
    "bert": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
             "intermediate_size": 96, "vocab_size": 120, "max_position_embeddings": 40},
    "vit": {"num_hidden_layers": 2, "hidden_size": 48, "num_attention_heads": 3,
            "intermediate_size": 80, "image_size": 32, "patch_size": 8},
    "transformer": {"num_encoder_layers": 2, "num_decoder_layers": 3, "d_model": 64,
                    "nhead": 4, "dim_feedforward": 96, "src_vocab_size": 50,
                    "tgt_vocab_size": 60},
    "lstm_lm": {"vocab_size": 50, "n_embd": 32},
    "gru_lm": {"vocab_size": 50, "n_embd": 32},
}

# as --set arguments: SMALL["gpt2"] == ["n_layer=3", "n_embd=64", ...]
SMALL = {name: [f"{k}={v}" for k, v in sizes.items()] for name, sizes in _SMALL.items()}
