"""Heavy libraries loaded on first use, so commands that never touch them start instantly.

The op modules (:mod:`archcc.ops`) hold schemas *and* shape rules; ``archcc fmt`` and
``archcc schema`` need only the schemas, so ``sympy`` and ``networkx`` (0.3 s together) must
not load when the ops are imported::

    from archcc.lazy import sympy      # a stand-in; sympy itself loads at sympy.Symbol(...)

The stand-in is not registered in ``sys.modules`` (tools that walk every module, such as
``inspect.getmodule``, would load it); on first use it takes the real module's namespace, so
later lookups cost what they cost on the module itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _Lazy(ModuleType):
    def __getattr__(self, attr: str):  # only reached while the namespace is still empty
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


sympy = _Lazy("sympy")
nx = _Lazy("networkx")
