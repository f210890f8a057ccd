"""Shared helpers for the LLM tests (imported by test_llm_*, test_ask, test_summarize, test_serve).

- :func:`shared_llm`: the real bundled model, loaded once per test process. It is converted into a
  temporary cache (about half a minute, once per session) unless the user cache already holds the
  conversion, which is then only read.
- :class:`FakeLLM`: a deterministic backend for logic tests, registered through the real registry.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from pipeline.llm.base import LLM, GenerationOptions, GenerationStats, LoadContext, TextStream, stream_with_stats
from pipeline.llm.registry import register_backend, unregister_backend

ROOT = Path(__file__).resolve().parents[1]
TEST_MAX_NEW = 24  # answer tokens in tests: enough to see an answer, cheap on 2 cores


@lru_cache(maxsize=None)
def llm_cache_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="syllabus-llm-test-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def llm_config(**llm_overrides):
    from pipeline.config import load_config

    overrides = {f"llm.{k}": v for k, v in llm_overrides.items()}
    return load_config(ROOT / "config.yaml", overrides=overrides)


@lru_cache(maxsize=None)
def model_cache_dirs() -> tuple[Path, ...]:
    """Where the shared model's conversions live, fixed at first use (a test that points SYLLABUS_CACHE
    elsewhere later must not move them)."""
    from syllabus_common.models import user_cache_dir

    return (llm_cache_dir(), user_cache_dir())


@lru_cache(maxsize=None)
def shared_llm():
    """The bundled SmolLM2-135M (default precision), context 2048, loaded once."""
    from pipeline.llm import load_llm

    cfg = llm_config(context=2048, max_new_tokens=TEST_MAX_NEW)
    ctx = LoadContext(cache_dirs=model_cache_dirs(), device="cpu", offline=True)
    return load_llm(cfg.llm, ctx)


def converted_folder() -> Path:
    """The safetensors folder the shared model was loaded from."""
    from pipeline.llm.convert import converted_gguf, resolve_source

    shared_llm()
    source = resolve_source("SmolLM2-135M-Instruct", None, True)
    return converted_gguf(source, model_cache_dirs())[0]


def packed_file() -> Path:
    """The shared model's packed fast-decoder weights (made when it was loaded)."""
    from pipeline.llm.packcache import pack_name

    name = pack_name(converted_folder(), shared_llm().precision)
    return next(p for base in model_cache_dirs() if (p := base / "models" / name).is_file())


@lru_cache(maxsize=None)
def onnx_embedder():
    """The embedding model on ONNX Runtime; its export is made in the user cache once per machine."""
    from pipeline.config import load_config
    from pipeline.onnx_embed import embedder_for

    emb = embedder_for(load_config(ROOT / "config.yaml"))
    emb.model  # exports when the cache lacks it
    return emb


def cache_env(base: Path) -> dict:
    """Environment for a `syllabus` subprocess: a private cache that already holds the converted LLM and
    the embedding model's ONNX export."""
    models = base / "models"
    models.mkdir(parents=True, exist_ok=True)
    for folder in (converted_folder(), onnx_embedder().folder, packed_file()):
        link = models / folder.name
        if not link.exists():
            os.symlink(folder, link)
    return {"SYLLABUS_CACHE": str(base), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class FakeLLM(LLM):
    """Words are tokens; replies are made from the prompt's words, so tests can trace where text went.

    ``reply(messages) -> str`` may be given; the default echoes "summary of" + the first words of the
    last message. Every call is recorded with its prompt size.
    """

    backend = "fake"

    def __init__(self, context: int = 4096, reply=None, name: str = "fake-model"):
        self.name = name
        self._context = context
        self.reply = reply or (lambda messages: "summary of " + " ".join(messages[-1]["content"].split()[-12:]))
        self.calls: list[dict] = []

    @property
    def context_length(self) -> int:
        return self._context

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat_template(self, messages) -> str:
        return "".join(f"<{m['role']}> {m['content']} </{m['role']}> " for m in messages) + "<assistant>"

    def stream(self, messages, options: GenerationOptions) -> TextStream:
        prompt_tokens = self.count_chat_tokens(messages)
        self.calls.append({"messages": [dict(m) for m in messages], "prompt_tokens": prompt_tokens,
                           "max_new_tokens": options.max_new_tokens})
        words = self.reply(messages).split()[: options.max_new_tokens]

        def produce(stats: GenerationStats):
            stats.prompt_tokens = prompt_tokens
            for i, w in enumerate(words):
                stats.completion_tokens = i + 1
                yield (" " if i else "") + w
            stats.finish_reason = "length" if len(words) >= options.max_new_tokens else "stop"

        return stream_with_stats(produce)

    def describe(self) -> dict:
        return {"backend": "fake", "model": self.name, "context_length": self._context, "precision": "none"}


@contextmanager
def fake_backend(llm: FakeLLM):
    """Register ``llm`` as backend "fake" through the real registry for the duration of the block."""
    register_backend("fake", lambda cfg, ctx: llm, replace=True)
    try:
        yield llm
    finally:
        unregister_backend("fake")


class CountingLLM(LLM):
    """Wraps a real model and counts generate calls (resume tests)."""

    def __init__(self, inner: LLM):
        self.inner = inner
        self.name = inner.name
        self.backend = inner.backend
        self.calls = 0

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def count_chat_tokens(self, messages):
        return self.inner.count_chat_tokens(messages)

    def chat_template(self, messages):
        return self.inner.chat_template(messages)

    def stream(self, messages, options):
        self.calls += 1
        return self.inner.stream(messages, options)

    def describe(self):
        return self.inner.describe()
