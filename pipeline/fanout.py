"""Many independent model calls at once, never more than ``llm.concurrency`` in flight.

A served model (vLLM, any OpenAI-compatible server, another machine's ``syllabus serve``) batches
concurrent requests, so summarizing a shelf of books goes as fast as the server allows when the
client keeps several requests open. A model in this process runs one generation at a time: there
the bound is 1.

    from pipeline.api import summarize_many
    books = summarize_many(["a.pdf", "b.pdf", "c.pdf"], cfg)     # llm.concurrency books at once
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, TypeVar

log = logging.getLogger(__name__)
T, R = TypeVar("T"), TypeVar("R")


class Peak:
    """The most calls that were in flight at once (for the tests and the benchmark)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1


def bounded_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int, peak: Peak | None = None) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``concurrency`` calls running at once (threads: the
    calls wait on a server). Results in input order; the first error is raised once the calls
    already running have ended, and the calls not yet started are dropped."""
    items = list(items)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    peak = peak or Peak()

    def call(x: T) -> R:
        with peak:
            return fn(x)

    if concurrency == 1 or len(items) <= 1:
        return [call(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="fanout") as pool:
        futures = [pool.submit(call, x) for x in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()
        return [f.result() for f in futures]


def llm_concurrency(cfg, llm=None) -> int:
    """Calls the configured model may take at once: ``llm.concurrency`` for a served model, else 1."""
    backend = getattr(llm, "backend", None) or cfg.llm.backend
    if backend != "openai":
        if cfg.llm.concurrency > 1:
            log.info("llm.concurrency %d ignored: the %s backend runs one generation at a time in this process",
                     cfg.llm.concurrency, backend)
        return 1
    return cfg.llm.concurrency


def summarize_many(sources: list, cfg, kb_path: Path | None = None, llm=None, level: str | None = None,
                   on_done: Callable[[object], None] | None = None, peak: Peak | None = None,
                   cache_dir: Path | None = None) -> list:
    """Summarize several books or recordings (see :func:`pipeline.summarize.summarize`) with one loaded
    model, ``llm.concurrency`` of them at once over a served model → [BookSummary], in input order.
    ``on_done(book)`` as each one finishes; a failure stops the rest and is raised. ``cache_dir``: where
    model calls are cached (default: the KB's ``cache/``, else the user cache)."""
    from pipeline.summarize import summarize

    if llm is None:
        from pipeline.llm import load_model
        from pipeline.sources import has_kb

        llm = load_model(cfg, Path(kb_path) if has_kb(kb_path) else None)

    # Once for all books, not per concurrent call: the embedder (loaded, then shared; ONNX Runtime
    # sessions run concurrently) and the answer mode (an `auto` self-check would otherwise run in
    # every first call at once).
    from syllabus_common.models import user_cache_dir
    from pipeline.ability import resolve_mode
    from pipeline.llm import options_from_config
    from pipeline.onnx_embed import embedder_for
    from pipeline.prompting import load_prompts

    mode = resolve_mode(cfg.summarize.mode, llm, load_prompts(cfg), options_from_config(cfg.llm), user_cache_dir())
    embedder = embedder_for(cfg)
    embedder.encode(["warm up"])  # loads the model here, before the threads share it

    def one(source):
        book = summarize(source, cfg, kb_path, llm=llm, level=level, cache_dir=cache_dir, embedder=embedder, mode=mode)
        if on_done is not None:
            on_done(book)
        return book

    return bounded_map(one, sources, llm_concurrency(cfg, llm), peak)
