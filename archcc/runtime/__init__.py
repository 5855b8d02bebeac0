"""Runtime helpers for generated modules: importing them from a path."""

from archcc.runtime.loader import import_file

__all__ = ["import_file"]
