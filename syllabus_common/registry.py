"""Backends by name, one shape for every kind (LLM, speech): register a factory under a name (a
second registration of the same name is refused unless it says ``replace``), create lazily (the
factory imports its library only when called), list the names for ``--help`` and error messages.

Built-ins register through the same call as an extension or a test fake (simonw/llm's habit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from syllabus_common.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]  # creates the backend (loads its model); imports its library lazily
    description: str = ""
    preflight: Callable[..., None] | None = None  # checks what creating needs (weights present) without loading


class Registry:
    def __init__(self, kind: str, key: str):
        self.kind = kind  # "speech backend"
        self.key = key  # the config key that picks one: "asr.backend"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, factory: Callable[..., Any], description: str = "", replace: bool = False,
                 preflight: Callable[..., None] | None = None) -> None:
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, factory, description, preflight)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        """The entry for ``name``; an unknown name fails with the valid ones."""
        found = self._entries.get(name)
        if found is None:
            raise ConfigError(f"unknown {self.key} {name!r}; valid: {', '.join(self.names())}")
        return found

    def validate(self, name: str) -> str:
        """``name`` when registered; else ValueError listing the valid names (for config validators)."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return name

    def create(self, name: str, *args, **kwargs):
        return self.entry(name).factory(*args, **kwargs)

    def preflight(self, name: str, *args, **kwargs) -> None:
        """Raise now what :meth:`create` would raise for missing weights, without loading anything."""
        check = self.entry(name).preflight
        if check is not None:
            check(*args, **kwargs)

    def help(self) -> str:
        """One line for ``--help``: ``asr.backend: faster-whisper (…), openai-whisper (…)``."""
        items = [f"{e.name} ({e.description})" if e.description else e.name for e in map(self.entry, self.names())]
        return f"{self.key}: {', '.join(items)}"
