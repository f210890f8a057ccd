"""A named registry of factories: how pluggable parts (re-rankers, ...) are chosen by config."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from pipeline.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """``register(name, factory)``; ``get(name)`` for the config key ``key`` (for its error message)."""

    def __init__(self, what: str, key: str):
        self.what = what
        self.key = key
        self._factories: dict[str, F] = {}

    def register(self, name: str, factory: F, replace: bool = False) -> None:
        if name in self._factories and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        self._factories.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> F:
        factory = self._factories.get(name)
        if factory is None:
            raise ConfigError(f"unknown {self.key} {name!r}; valid: {', '.join(self.names())}")
        return factory
