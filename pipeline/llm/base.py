"""The contract every LLM backend keeps, and the one registry that picks a backend by name.

A backend loads a model and offers five things: ``generate`` (streaming text deltas), ``count_tokens``,
``context_length``, ``chat_template`` (messages → the prompt the model sees) and a ``name``. The
callers (``ask``, ``summarize``, ``serve``) only use this surface, so a local model and a remote
OpenAI-compatible server are interchangeable.

Backends register through :func:`register_backend`, built-ins included (simonw/llm's habit): a test
registers a fake the same way and ``llm.backend: fake`` picks it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

Messages = Sequence[dict]  # [{"role": "system" | "user" | "assistant", "content": str}, ...]


@dataclass(frozen=True)
class GenerationOptions:
    """How to decode; one bundle travels from config or request to the backend."""

    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy (deterministic, what citations and caches want)
    top_p: float = 1.0
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens already in prompt or answer
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_s: float | None = None  # seconds from the call to the first text delta
    seconds: float = 0.0  # whole call
    finish_reason: str = "stop"  # "stop" (end of turn or a stop string) | "length" (max_new_tokens)

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.first_token_s is None or self.completion_tokens < 2 or self.seconds <= self.first_token_s:
            return None
        return (self.completion_tokens - 1) / (self.seconds - self.first_token_s)


class TextStream:
    """An iterator of text deltas; ``stats`` is filled in when it is exhausted (or closed)."""

    def __init__(self, deltas: Iterator[str], stats: GenerationStats):
        self._deltas = deltas
        self.stats = stats
        self._text: list[str] = []

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        delta = next(self._deltas)
        self._text.append(delta)
        return delta

    def text(self) -> str:
        """Consume the rest and return the whole text."""
        for _ in self:
            pass
        return "".join(self._text)

    def close(self) -> None:
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()


@dataclass
class Completion:
    text: str
    stats: GenerationStats = field(default_factory=GenerationStats)


class LLM(ABC):
    """A loaded model. Implementations: ``pipeline.llm.hf`` (transformers), ``pipeline.llm.remote`` (openai)."""

    backend: str = ""
    name: str = ""  # model name shown to users and served on /v1/models

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Tokens the model attends to: prompt plus answer must fit in it."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's own tokenizer (no special tokens added)."""

    @abstractmethod
    def chat_template(self, messages: Messages) -> str:
        """The prompt text the model sees for ``messages``, ready for the assistant's turn."""

    @abstractmethod
    def stream(self, messages: Messages, options: GenerationOptions) -> TextStream:
        """Generate the assistant's reply as text deltas."""

    def count_chat_tokens(self, messages: Messages) -> int:
        """Prompt tokens for ``messages`` including the template's special tokens."""
        return self.count_tokens(self.chat_template(messages))

    def generate(self, messages: Messages, options: GenerationOptions) -> Completion:
        s = self.stream(messages, options)
        text = s.text()
        return Completion(text, s.stats)

    def close(self) -> None:
        """Release the model (memory, connections)."""

    def describe(self) -> dict:
        """Facts for ``--json`` output and benchmarks."""
        return {"backend": self.backend, "model": self.name, "context_length": self.context_length}


def stream_with_stats(produce: Callable[[GenerationStats], Iterator[str]]) -> TextStream:
    """Wrap a generator of deltas so the first-delta time and total time land in its stats."""
    stats = GenerationStats()
    started = time.perf_counter()

    def run() -> Iterator[str]:
        try:
            for delta in produce(stats):
                if stats.first_token_s is None and delta:
                    stats.first_token_s = time.perf_counter() - started
                yield delta
        finally:
            stats.seconds = time.perf_counter() - started

    return TextStream(run(), stats)


@dataclass(frozen=True)
class LoadContext:
    """Where a backend may keep converted files and which device to use."""

    cache_dirs: tuple[Path, ...] = ()  # first is written, all are searched
    device: str = "cpu"
    offline: bool = True
    notify: Callable[[str], None] | None = None  # side remarks for the user (fallbacks, one-time conversions)


Factory = Callable[..., LLM]  # factory(llm_config, ctx: LoadContext) -> LLM
_BACKENDS: dict[str, Factory] = {}


def register_backend(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``llm.backend: <name>`` load models through ``factory(llm_config, ctx)``."""
    if name in _BACKENDS and not replace:
        raise ValueError(f"LLM backend {name!r} is already registered")
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def load_llm(llm_cfg, ctx: LoadContext | None = None) -> LLM:
    """Load the model ``llm_cfg`` (the config's ``llm`` section) describes with its backend."""
    factory = _BACKENDS.get(llm_cfg.backend)
    if factory is None:
        raise ConfigError(f"unknown llm.backend {llm_cfg.backend!r}; valid: {', '.join(available_backends())}")
    ctx = ctx or LoadContext()
    if llm_cfg.model == "auto" and llm_cfg.backend == "transformers":
        llm_cfg = llm_cfg.model_copy(update={"model": planned_llm(ctx.offline)})
    return factory(llm_cfg, ctx)


def planned_llm(offline: bool = True) -> str:
    """``llm.model: auto``: the model the resource planner picks for this machine (`syllabus plan`)."""
    import logging
    from types import SimpleNamespace

    from pipeline.planner.plan import resolve_auto

    choice = resolve_auto("llm", SimpleNamespace(offline=offline))  # it reads only .offline
    logging.getLogger(__name__).info("llm model auto: %s", choice["explanation"])
    return choice["config_value"]


def options_from_config(llm_cfg, **overrides) -> GenerationOptions:
    values = dict(
        max_new_tokens=llm_cfg.max_new_tokens, temperature=llm_cfg.temperature, top_p=llm_cfg.top_p,
        repetition_penalty=llm_cfg.repetition_penalty, seed=llm_cfg.seed,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationOptions(**values)


# Built-ins register through the same path as plugins; their modules (torch, openai) load lazily.
def _transformers(llm_cfg, ctx: LoadContext) -> LLM:
    from pipeline.llm.hf import TransformersLLM

    return TransformersLLM.load(llm_cfg, ctx)


def _openai(llm_cfg, ctx: LoadContext) -> LLM:
    from pipeline.llm.remote import OpenAILLM

    return OpenAILLM.load(llm_cfg, ctx)


register_backend("transformers", _transformers)
register_backend("openai", _openai)
