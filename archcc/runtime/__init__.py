"""Runtime helpers for generated modules: import them, compile them, export them.

    from archcc.runtime import compile
    fast = compile(model, "inductor")          # or "tensorrt" (GPU), "eager"

``archcc.runtime.compile`` is the function (it shadows its own submodule's name here).
"""

from archcc.runtime.compile import compile
from archcc.runtime.loader import import_file

__all__ = ["compile", "import_file"]
