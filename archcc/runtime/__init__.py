"""Runtime helpers for generated modules: import them, compile them, export them.

    from archcc.runtime import compile
    fast = compile(model, "inductor")          # or "tensorrt" (GPU), "eager"

``compile`` lives in :mod:`archcc.runtime.backends` and is imported on first use, so
importing this package (the CLI does, to load generated modules) does not load torch.
"""

from archcc.runtime.loader import import_file, import_source

__all__ = ["compile", "import_file", "import_source"]


def __getattr__(name: str):
    if name == "compile":
        from archcc.runtime.backends import compile

        return compile
    raise AttributeError(f"module 'archcc.runtime' has no attribute {name!r}")
