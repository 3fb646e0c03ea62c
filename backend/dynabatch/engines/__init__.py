"""Engines behind one protocol. `make_engine` picks one by the `engine` parameter."""

from .base import Engine, EngineError, KvCapacity

__all__ = ["Engine", "EngineError", "KvCapacity"]
