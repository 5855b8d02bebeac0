"""Import a generated module from a file path or from its source, without touching
``sys.path`` and without leaving files behind.

    module = import_file("generated/gpt2.py", "archcc_generated.gpt2")
    module = import_source(source, "archcc_inspect_1f2e.gpt2")   # nothing written to disk
"""

from __future__ import annotations

import importlib.util
import linecache
import sys
import types
from pathlib import Path
from types import ModuleType


def import_file(path: str | Path, name: str) -> ModuleType:
    """Import ``path`` as module ``name`` (re-importing replaces an earlier version)."""
    spec = importlib.util.spec_from_file_location(name, Path(path))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while executing
    spec.loader.exec_module(module)
    return module


def import_source(source: str, name: str) -> ModuleType:
    """Run generated ``source`` as module ``name`` straight from memory.

    The text is registered with :mod:`linecache` under a ``<archcc:name>`` file name, so
    tracebacks and ``inspect.getsource`` still show the generated lines, but no temp file
    exists for anyone to swap or forget."""
    filename = f"<archcc:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses look their module up while defining Config
    try:
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - archcc's output
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
