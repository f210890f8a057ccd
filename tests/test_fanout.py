"""Summaries of many books fan out over a served model with bounded concurrency (``llm.concurrency``),
tested against `syllabus serve` on loopback: the server sees requests wait for each other only when
the client keeps several open, never more than the bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pymupdf
import pytest

from conftest import ROOT
from test_llm_support import shared_llm

A5 = pymupdf.paper_rect("a5")
SHELF = {
    "Rivers and Seas": [("1 Rivers", "Rivers carry water from the mountains to the sea and carve valleys on the way."),
                        ("2 Seas", "Seas are salty because rivers bring dissolved minerals that stay when water evaporates.")],
    "Stars and Planets": [("1 Stars", "Stars shine because hydrogen fuses into helium in their hot dense cores."),
                          ("2 Planets", "Planets orbit stars and shine only by the starlight that they reflect.")],
}


def tiny_book(path: Path, title: str, chapters) -> Path:
    doc = pymupdf.open()
    outline = []
    for heading, body in chapters:
        page = doc.new_page(width=A5.width, height=A5.height)
        page.insert_text((40, 60), heading, fontsize=16)
        page.insert_textbox(pymupdf.Rect(40, 90, A5.width - 40, A5.height - 50), body, fontsize=10)
        outline.append([1, heading, doc.page_count])
    doc.set_toc(outline)
    doc.set_metadata({"title": title})
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def served():
    from test_serve_hardening import serving

    with serving(shared_llm()) as root:
        yield root


def _cfg(root: str, concurrency: int):
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml", overrides={
        "llm.backend": "openai", "llm.base_url": f"{root}/v1", "llm.model": "SmolLM2-135M-Instruct",
        "llm.retries": 0, "llm.concurrency": concurrency,
        "summarize.mode": "generative", "summarize.summary_tokens": 16, "summarize.book_tokens": 16})


def _watch(root: str, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        health = httpx.get(f"{root}/health", timeout=10).json()
        seen.append(health["waiting"] + (1 if health["busy"] else 0))
        time.sleep(0.02)


def test_many_books_go_to_the_server_at_most_llm_concurrency_at_once(served, tmp_path):
    from pipeline.api import summarize_many
    from pipeline.fanout import Peak

    books = [tiny_book(tmp_path / f"book{i}.pdf", title, chapters) for i, (title, chapters) in enumerate(SHELF.items())]
    for concurrency, expect in ((1, 1), (2, 2)):
        stop, seen, peak = threading.Event(), [], Peak()
        watcher = threading.Thread(target=_watch, args=(served, stop, seen), daemon=True)
        watcher.start()
        cfg = _cfg(served, concurrency)
        try:
            done = summarize_many(books, cfg, None, peak=peak, cache_dir=tmp_path / f"cache-{concurrency}")
        finally:
            stop.set()
            watcher.join(timeout=10)
        assert [b.title for b in done] == ["Rivers and Seas", "Stars and Planets"]  # input order
        assert all(len(b.units) == 2 and b.overview.points and b.model_calls for b in done)
        assert peak.most == expect
        assert max(seen) <= concurrency  # the server never held more requests than the bound
    assert max(seen) == 2  # ... and with 2 it did hold two at once: one generating, one waiting


def test_bounded_map_keeps_order_bound_and_the_first_error():
    from pipeline.fanout import Peak, bounded_map

    peak = Peak()
    assert bounded_map(lambda x: (time.sleep(0.05), x * x)[1], range(8), 3, peak) == [x * x for x in range(8)]
    assert peak.most == 3

    def boom(x):
        if x == 2:
            raise ValueError("bad book 2")
        return x

    with pytest.raises(ValueError, match="bad book 2"):
        bounded_map(boom, range(5), 2)


def test_a_local_model_takes_one_call_at_a_time(cfg):
    from pipeline.fanout import llm_concurrency

    local = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"concurrency": 8})})
    assert llm_concurrency(local) == 1
    served_cfg = local.model_copy(update={"llm": local.llm.model_copy(update={"backend": "openai"})})
    assert llm_concurrency(served_cfg) == 8
