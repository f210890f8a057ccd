"""The contract every LLM backend keeps.

A backend loads a model and offers five things: ``generate`` (streaming text deltas), ``count_tokens``,
``context_length``, ``chat_template`` (messages → the prompt the model sees) and a ``name``. The
callers (``ask``, ``summarize``, ``serve``) only use this surface, so a local model and a remote
OpenAI-compatible server are interchangeable.

Backends register by name in :mod:`pipeline.llm.registry`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence


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
        """Consume the rest and return the whole text. An exception on the way (Ctrl-C) closes the
        stream, so the backend lets go of its model at once, not when the garbage collector finds it."""
        try:
            for _ in self:
                pass
        except BaseException:
            self.close()
            raise
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

    def reply_logprob(self, messages: Messages, reply: str) -> float:
        """log P(``reply`` as the assistant's turn | ``messages``): the sum over the reply's tokens.

        Scores a given text instead of generating one (the LLM re-ranker's query likelihood); a
        backend that cannot see its model's token probabilities raises :class:`ConfigError`."""
        from syllabus_common.errors import ConfigError

        raise ConfigError(f"the {self.backend} backend cannot score a given text; use a local model (backend: transformers)")

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
        deltas = produce(stats)
        try:
            for delta in deltas:
                if stats.first_token_s is None and delta:
                    stats.first_token_s = time.perf_counter() - started
                yield delta
        finally:
            deltas.close()  # closing this stream closes the backend's generator (its lock, its worker)
            stats.seconds = time.perf_counter() - started

    return TextStream(run(), stats)


@dataclass(frozen=True)
class LoadContext:
    """Where a backend may keep converted files and which device to use."""

    cache_dirs: tuple[Path, ...] = ()  # first is written, all are searched
    device: str = "cpu"
    offline: bool = True
    notify: Callable[[str], None] | None = None  # side remarks for the user (fallbacks, one-time conversions)
    # Load the weights in a background thread where the backend can (the tokenizer is ready at once;
    # generating waits for the weights): a CLI shows the evidence meanwhile.
    background: bool = False


def options_from_config(llm_cfg, **overrides) -> GenerationOptions:
    values = dict(
        max_new_tokens=llm_cfg.max_new_tokens, temperature=llm_cfg.temperature, top_p=llm_cfg.top_p,
        repetition_penalty=llm_cfg.repetition_penalty, seed=llm_cfg.seed,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationOptions(**values)
