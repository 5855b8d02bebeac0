"""archcc: a declarative architecture spec -> readable, standalone PyTorch.

    >>> import archcc
    >>> gpt2 = archcc.load("specs/gpt2.yaml")      # build (cached by spec hash) and import
    >>> model = gpt2.Model(gpt2.Config(n_layer=2)).eval()
    >>> logits = model(*gpt2.example_inputs())
"""

__version__ = "0.1.0"

__all__ = ["__version__", "build", "compile_spec", "load"]


def __getattr__(name: str):
    """``archcc.build`` / ``compile_spec`` / ``load`` import the compiler on first use, so
    ``import archcc`` (and ``archcc --version``) stays instant."""
    if name in ("build", "compile_spec", "load"):
        from archcc import api

        return getattr(api, name)
    raise AttributeError(f"module 'archcc' has no attribute {name!r}")
