"""The ``buffer`` kind: a fixed tensor computed once at construction, never saved.

Each op that needs one registers how to write it (``@register_buffer("sinusoidal")``); a
lowered class then holds ``Submodule(name, "buffer", {"init": "sinusoidal", ...})`` and the
``__init__`` lines come from that function. Buffers are not persistent, so checkpoints never
carry them.
"""

from __future__ import annotations

from archcc.ops import Kind, buffer_init, kind


@kind
class BufferKind(Kind):
    name = "buffer"

    def init_lines(self, sub, arg):
        return buffer_init(sub.args["init"])(sub, arg)

    def state(self, sub, value):
        return []  # not persistent: checkpoints never carry it
