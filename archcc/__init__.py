"""archcc: a declarative architecture spec -> readable, standalone PyTorch.

    >>> import archcc
    >>> gpt2 = archcc.load("specs/gpt2.yaml")      # build (cached by spec hash) and import
    >>> model = gpt2.Model(gpt2.Config(n_layer=2)).eval()
    >>> logits = model(*gpt2.example_inputs())
"""

__version__ = "0.1.0"

from archcc.api import build, compile_spec, load  # noqa: E402

__all__ = ["__version__", "build", "compile_spec", "load"]
