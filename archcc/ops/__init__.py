"""The op registry: every op archcc knows, builtin or from a plugin package, in one place.

Each module of this package defines one op (or a small family) as an :class:`Op` subclass
decorated with :func:`op`, and the kinds of ``__init__`` line it emits with :func:`kind`.
Modules are found by listing the package, so adding an op is adding a module::

    >>> from archcc import ops
    >>> ops.get("ffn").schema.__name__, ops.get("ffn").sizes
    ('FFN', ('dim', 'hidden'))
    >>> [o.name for o in ops.all_ops()][:3]
    ['embedding', 'linear', 'layernorm']

Plugins (:mod:`archcc.plugins`) register through :func:`register` as well; nothing a spec
says ever imports anything.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

from archcc.ops.base import Example, Kind, Op

__all__ = ["Example", "Kind", "Op", "all_ops", "buffer_init", "get", "get_kind", "helpers_for",
           "kind", "op", "register", "register_buffer", "register_helper", "unregister",
           "version"]

_OPS: dict[str, Op] = {}
_KINDS: dict[str, Kind] = {}
_BUFFERS: dict[str, Callable] = {}
_HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {}  # name -> (source, helpers it needs)
_STATE = {"loaded": False, "version": 0}
C = TypeVar("C", bound=type)


def _load_builtins() -> None:
    """Import every module of this package once (each registers what it defines)."""
    if _STATE["loaded"]:
        return
    _STATE["loaded"] = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def op(cls: C) -> C:
    """Class decorator: register one instance of an :class:`Op` subclass."""
    register(cls())
    return cls


def kind(cls: C) -> C:
    """Class decorator: register one instance of a :class:`Kind` subclass."""
    instance = cls()
    _KINDS[instance.name] = instance
    return cls


def register_buffer(init: str) -> Callable[[Callable], Callable]:
    """Decorator: the ``__init__`` lines of a fixed tensor a class registers as a buffer
    (``Submodule(kind="buffer", args={"init": init, ...})``)."""
    def decorate(fn: Callable) -> Callable:
        _BUFFERS[init] = fn
        return fn
    return decorate


def register(instance: Op) -> Op:
    """Add an op (builtin modules through :func:`op`, plugins directly)."""
    _OPS[instance.name] = instance
    _STATE["version"] += 1
    return instance


def unregister(name: str) -> None:
    """Forget an op (plugins being reset); builtin ops stay."""
    if _OPS.pop(name, None) is not None:
        _STATE["version"] += 1


def version() -> int:
    """Changes whenever the set of ops does (caches of derived schemas key on it)."""
    _load_builtins()
    return _STATE["version"]


def get(name: str) -> Op | None:
    """The op with this ``op:`` tag, or None."""
    _load_builtins()
    return _OPS.get(name)


def all_ops() -> list[Op]:
    """Every op: builtins by their ``order``, then plugins in registration order."""
    _load_builtins()
    return sorted(_OPS.values(), key=lambda o: o.order)


def get_kind(name: str) -> Kind | None:
    """The submodule kind called ``name`` (``linear``, ``buffer``, ...), or None."""
    _load_builtins()
    return _KINDS.get(name)


def buffer_init(init: str) -> Callable:
    """The ``__init__`` lines of the buffer whose ``init`` is ``init``."""
    _load_builtins()
    return _BUFFERS[init]


def register_helper(name: str, source: str, needs: tuple[str, ...] = ()) -> None:
    """A module-level function or class of generated files (``apply_rotary``, ``Rotary``):
    written once into every file whose code names it, after the helpers it ``needs``."""
    _HELPERS[name] = (source.strip("\n"), needs)


def helpers_for(texts: list[str]) -> list[str]:
    """Sources of the helpers these lines of generated code use (and what those use), each
    once, in registration order::

        helpers_for(["q = apply_rotary(q, cos, sin)"])  # -> [apply_rotary's source]
    """
    import re

    _load_builtins()
    text = "\n".join(texts)
    used = {name for name in _HELPERS if re.search(rf"(?<![\w.]){name}\b", text)}
    todo = list(used)
    while todo:
        for dep in _HELPERS[todo.pop()][1]:
            if dep not in used:
                used.add(dep)
                todo.append(dep)
    return [source for name, (source, _) in _HELPERS.items() if name in used]
