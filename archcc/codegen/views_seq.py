"""``__init__`` lines of the sequence layers: torch's own modules, defaults left out.

    lstm: {op: lstm, in: n_embd, hidden: n_embd, layers: n_layer, dropout: dropout}
    ->  self.lstm = nn.LSTM(config.n_embd, config.n_embd, num_layers=config.n_layer,
                            batch_first=True, dropout=config.dropout)
"""

from __future__ import annotations

from archcc.codegen import safe_text
from archcc.codegen.render import render_expr

KINDS = ("rnn", "lstm", "gru", "conv1d", "embedding_bag", "gru_cell", "lstm_cell")
_CLASSES = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU", "gru_cell": "nn.GRUCell",
            "lstm_cell": "nn.LSTMCell"}


def _changed(value, default) -> bool:
    return getattr(value, "value", object()) != default or hasattr(value, "id")


def _keywords(args: dict, defaults: dict, resolve) -> str:
    """``, key=value`` for each arg that differs from torch's default (in this order)."""
    parts = []
    for key, (torch_name, default) in defaults.items():
        if key in args and _changed(args[key], default):
            parts.append(f"{torch_name}={render_expr(args[key], resolve)}")
    return "".join(f", {p}" for p in parts)


def submodule_line(sub, resolve) -> list[str]:
    a = sub.args
    if sub.kind == "conv1d":
        extra = _keywords(a, {"stride": ("stride", 1), "padding": ("padding", 0),
                              "bias": ("bias", True)}, resolve)
        return [f"self.{sub.name} = nn.Conv1d({render_expr(a['in'], resolve)}, "
                f"{render_expr(a['out'], resolve)}, "
                f"kernel_size={render_expr(a['kernel'], resolve)}{extra})"]
    if sub.kind.endswith("_cell"):  # one step of an rnn_decoder
        return [f"self.{sub.name} = {_CLASSES[sub.kind]}({render_expr(a['in'], resolve)}, "
                f"{render_expr(a['hidden'], resolve)})"]
    if sub.kind == "embedding_bag":
        pad = f", padding_idx={render_expr(a['padding_idx'], resolve)}" \
            if "padding_idx" in a else ""
        return [f"self.{sub.name} = nn.EmbeddingBag({render_expr(a['num'], resolve)}, "
                f"{render_expr(a['dim'], resolve)}, mode={safe_text.literal(a['mode'])}{pad})"]
    extra = _keywords(a, {"layers": ("num_layers", 1), "bias": ("bias", True),
                          "batch_first": ("batch_first", False), "dropout": ("dropout", 0),
                          "bidirectional": ("bidirectional", False)}, resolve)
    if a.get("nonlinearity", "tanh") != "tanh":
        extra += f", nonlinearity={safe_text.literal(a['nonlinearity'])}"
    return [f"self.{sub.name} = {_CLASSES[sub.kind]}({render_expr(a['in'], resolve)}, "
            f"{render_expr(a['hidden'], resolve)}{extra})"]
