"""`summarize`: chapters from the outline, map-reduce that fits the window, cached and resumable."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pymupdf
import pytest

from test_llm_support import ROOT, CountingLLM, FakeLLM, cache_env, llm_config, shared_llm

from pipeline.llm import GenerationOptions
from pipeline.outline import from_pdf
from pipeline.packing import DoesNotFit
from pipeline.prompting import PromptSet
from pipeline.sumcache import FILE, SummaryCache
from pipeline.progress import Progress
from pipeline.summarize import Summarizer, render_markdown

A5 = pymupdf.paper_rect("a5")
RIVERS = ("Rivers carry water from mountains to the sea. A river basin collects rain over a wide area. Floods "
          "happen when rain falls faster than the channel can carry it away. Deltas form where rivers slow down "
          "and drop their sediment. ") * 2
MOUNTAINS = ("Mountains rise where tectonic plates collide and fold the crust. Erosion by ice and water wears them "
             "down over millions of years. High mountains have thin air and cold climates with short summers. ") * 2
DESERTS = ("Deserts receive less than 250 millimetres of rain a year. Plants there store water in thick stems and "
           "have long roots. Sand dunes move with the wind and can bury roads. ") * 2
CHAPTERS = [("1 Rivers", [RIVERS]), ("2 Mountains", [MOUNTAINS, MOUNTAINS]), ("3 Deserts", [DESERTS])]
# Expected headings: printed labels (front page i, chapters from 1) and physical pages.
EXPECTED = [("1 Rivers", "p. 1", 2, 2), ("2 Mountains", "pp. 2–3", 3, 4), ("3 Deserts", "p. 4", 5, 5)]


def three_chapter_pdf(path: Path, toc: bool = True, headings_in_large_type: bool = True) -> Path:
    doc = pymupdf.open()
    front = doc.new_page(width=A5.width, height=A5.height)
    front.insert_textbox(pymupdf.Rect(40, 200, A5.width - 40, 300), "A Geography Primer", fontsize=18, align=1)
    outline = []
    for title, pages in CHAPTERS:
        for i, body in enumerate(pages):
            page = doc.new_page(width=A5.width, height=A5.height)
            y = 60
            if i == 0:
                page.insert_text((40, y), title, fontsize=16 if headings_in_large_type else 10)
                outline.append([1, title, doc.page_count])
                y += 30
            page.insert_textbox(pymupdf.Rect(40, y, A5.width - 40, A5.height - 50), body, fontsize=10)
    doc.set_page_labels([{"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
                         {"startpage": 1, "prefix": "", "style": "D", "firstpagenum": 1}])
    if toc:
        doc.set_toc(outline)
    doc.set_metadata({"title": "A Geography Primer"})
    doc.save(path)
    return path


def scfg(**kw):
    cfg = llm_config(context=2048)
    return cfg.summarize.model_copy(update=kw), cfg


def check_chapters(markdown: str, units: list[dict]):
    for title, where, first, last in EXPECTED:
        assert f"## {title} ({where})" in markdown, markdown
        unit = next(u for u in units if u["title"] == title)
        assert (unit["page_start"], unit["page_end"]) == (first, last)
    assert markdown.count("\n## ") == 5  # front matter, three chapters, whole book
    assert "## Whole book" in markdown and markdown.rstrip().endswith("pages summarized: 5/5")


# ----- the real model: an interrupted run resumes from its cache


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Run `syllabus summarize` in a process, SIGKILL it once a few results are cached, then resume the
    same summary in this process with the same (real) model, counting model calls; then run it again."""
    base = tmp_path_factory.mktemp("resume")
    pdf = three_chapter_pdf(base / "geo.pdf")
    cache_dir = base / "cache"
    env = cache_env(cache_dir)
    config = base / "config.yaml"
    config.write_text("llm:\n  context: 2048\nsummarize:\n  chunk_tokens: 64\n  summary_tokens: 16\n  book_tokens: 24\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", "--config", str(config), "--kb", str(base / "no-kb"), "summarize", str(pdf), "--json"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    db = cache_dir / FILE
    deadline = time.monotonic() + 240
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    rows = con.execute("SELECT COUNT(*) FROM summaries").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            if rows >= 3:
                break
        time.sleep(0.2)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert still_running, f"summarize ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}"
    with sqlite3.connect(db) as con:
        cached = con.execute("SELECT COUNT(*) FROM summaries").fetchone()[0]

    from pipeline.api import summarize

    cfg = llm_config(context=2048)
    settings = cfg.summarize.model_copy(update=dict(chunk_tokens=64, summary_tokens=16, book_tokens=24))
    counting = CountingLLM(shared_llm())
    book = summarize(pdf, cfg.model_copy(update={"summarize": settings}), llm=counting, cache_dir=cache_dir)
    # Once more through the command line: everything now comes from the cache.
    out = base / "geo.md"
    again = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "--config", str(config), "--kb", str(base / "no-kb"), "summarize", str(pdf),
         "-o", str(out), "--json"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=240,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    return cached, counting.calls, book, json.loads(again.stdout), out.read_text(encoding="utf-8")


def test_summary_has_each_chapter_with_its_page_range_and_coverage(interrupted):
    _, _, book, _, markdown = interrupted
    check_chapters(markdown, [u.__dict__ for u in book.units])
    assert all(u.summary.strip() for u in book.units) and book.overview.strip()
    assert book.units[2].pieces >= 2  # 64-token map chunks: the two-page chapter went through reduce


def test_interrupted_summarize_resumes_without_redoing_cached_calls(interrupted):
    cached, calls, book, rerun, markdown = interrupted
    assert cached >= 3
    assert book.cache_hits == cached  # every result the killed run committed was used
    assert calls == book.model_calls >= 1  # only the rest went to the model
    assert rerun["model_calls"] == 0 and rerun["cache_hits"] == cached + calls  # a re-run is instant
    assert markdown == render_markdown(book)
    assert rerun["coverage"] == "pages summarized: 5/5" and len(rerun["units"]) == 4


# ----- map-reduce logic on long inputs, with a fake model through the real registry


def long_pdf(path: Path, chapters=((1, 10), (11, 30), (31, 40)), words_per_page: int = 180) -> Path:
    doc = pymupdf.open()
    outline = []
    for c, (first, last) in enumerate(chapters, 1):
        for p in range(first, last + 1):
            page = doc.new_page(width=A5.width, height=A5.height)
            words = [f"w{p}x{i % 37}" for i in range(words_per_page - 1)]
            words.insert(words_per_page // 2, f"mark{p}")  # mid-page: first lines of a page look like running heads
            page.insert_textbox(pymupdf.Rect(20, 20, A5.width - 20, A5.height - 20), " ".join(words), fontsize=5)
            if p == first:
                outline.append([1, f"Chapter {c}", p])
    doc.set_toc(outline)
    doc.save(path)
    return path


def verbose_reply(messages):
    return " ".join(f"s{i}" for i in range(200))  # longer than summary_tokens: cut to it by max_new_tokens


def test_map_reduce_fits_the_window_at_every_step_and_covers_every_page(tmp_path):
    pdf = long_pdf(tmp_path / "long.pdf")
    fake = FakeLLM(context=700, reply=verbose_reply)
    settings, cfg = scfg(summary_tokens=120, book_tokens=150, chunk_tokens=1536, max_pages=40)
    progress = []

    class Recorder(Progress):
        def stage(self, description, total):
            progress.append(("planned", total))

        def advance(self, n=1, cached=0):
            progress.append(("advance", cached))

    s = Summarizer(fake, PromptSet(), SummaryCache(tmp_path / "cache"), settings, GenerationOptions(), Recorder())
    doc = from_pdf(pdf)
    book = s.run(doc, s.plan(doc))
    assert all(c["prompt_tokens"] + c["max_new_tokens"] <= 700 for c in fake.calls)
    maps = [c for c in fake.calls if "Write the summary." in c["messages"][-1]["content"]]
    reduces = [c for c in fake.calls if "Write one combined summary." in c["messages"][-1]["content"]]
    books = [c for c in fake.calls if "Write the overview." in c["messages"][-1]["content"]]
    assert "overview of a book as a whole" in books[0]["messages"][0]["content"]
    assert len(books) == 1 and len(maps) >= 40 * 180 // 700
    # Every page's text went into exactly one map prompt: nothing truncated, nothing twice.
    for p in range(1, 41):
        holders = [c for c in maps if f"mark{p} " in c["messages"][-1]["content"]]
        assert len(holders) == 1, p
    # Summaries of a 20-page chapter needed more than one level of merging at 700 tokens.
    assert len(reduces) > len(book.units)
    assert [(u.title, u.page_start, u.page_end) for u in book.units] == [("Chapter 1", 1, 10), ("Chapter 2", 11, 30), ("Chapter 3", 31, 40)]
    assert book.coverage_line == "pages summarized: 40/40" and book.model_calls == len(fake.calls)
    assert progress[0][0] == "planned" and sum(1 for kind, _ in progress if kind == "advance") == len(fake.calls)
    # A re-run with the same model and text is answered from the cache.
    again = Summarizer(fake, PromptSet(), SummaryCache(tmp_path / "cache"), settings, GenerationOptions()).run(doc, s.plan(doc))
    assert again.model_calls == 0 and again.cache_hits == len(fake.calls)


def test_a_lecture_is_summarized_as_a_lecture_in_time_windows(tmp_path):
    from ingest.asr.base import Segment
    from ingest.media_doc import time_sections
    from ingest.transcript import Transcript
    from pipeline.outline import DocText

    segments = [Segment(10.0 * i, 10.0 * i + 9, f"Sentence {i} about {topic}.", -0.2, 0.01, 1.2, 0.0)
                for i, topic in enumerate(["rivers", "rivers", "mountains", "mountains", "deserts"])]
    transcript = Transcript(source="talk.m4a", duration=50.0, language="en", language_probability=1.0,
                            backend="fake", model="fake", segments=segments)
    sections, spans = time_sections(transcript, 20.0, "talk")
    doc = DocText(title="talk", path="talk.m4a", kind="media", identity="x", labels={}, n_pages=0, spans=spans,
                  sections=sections, outline_source="time windows")
    fake = FakeLLM(context=2048)
    settings, _ = scfg()
    s = Summarizer(fake, PromptSet(), SummaryCache(tmp_path / "cache"), settings, GenerationOptions())
    book = s.run(doc, s.plan(doc))
    assert [u.where for u in book.units] == ["00:00–00:20", "00:20–00:40", "00:40–00:50"]
    systems = [c["messages"][0]["content"] for c in fake.calls]
    assert systems and all("lecture" in m and "book" not in m for m in systems)
    assert "time sections" in fake.calls[-1]["messages"][-1]["content"]
    markdown = render_markdown(book)
    assert "\n## 00:20–00:40\n" in markdown and "## Whole lecture" in markdown
    assert book.coverage_line == "sections summarized: 3/3"


def test_window_too_small_is_an_error_not_a_truncation(tmp_path):
    pdf = long_pdf(tmp_path / "long.pdf", chapters=((1, 3),))
    settings, _ = scfg(summary_tokens=120)
    s = Summarizer(FakeLLM(context=200), PromptSet(), SummaryCache(tmp_path / "c"), settings, GenerationOptions())
    doc = from_pdf(pdf)
    with pytest.raises(DoesNotFit, match="raise llm.context"):
        s.run(doc, s.plan(doc))


def test_huge_chapter_without_subsections_is_split_into_page_windows(tmp_path):
    doc = from_pdf(long_pdf(tmp_path / "long.pdf"))
    settings, _ = scfg(max_pages=12, window_pages=8)
    units = Summarizer(FakeLLM(), PromptSet(), SummaryCache(tmp_path / "c"), settings, GenerationOptions()).plan(doc)
    assert [(u.title, u.page_start, u.page_end) for u in units] == [
        ("Chapter 1", 1, 10), ("Chapter 2 (part 1/3)", 11, 18), ("Chapter 2 (part 2/3)", 19, 26),
        ("Chapter 2 (part 3/3)", 27, 30), ("Chapter 3", 31, 40)]
    assert sorted(p for u in units for p in u.pages) == list(range(1, 41))


def test_without_a_toc_headings_are_detected_else_page_windows(tmp_path):
    settings, _ = scfg(window_pages=2)
    s = Summarizer(FakeLLM(), PromptSet(), SummaryCache(tmp_path / "c"), settings, GenerationOptions())
    doc = from_pdf(three_chapter_pdf(tmp_path / "headings.pdf", toc=False))
    assert doc.outline_source == "headings"
    titles = [u.title for u in s.plan(doc)]
    assert titles[-3:] == ["1 Rivers", "2 Mountains", "3 Deserts"]
    plain = from_pdf(three_chapter_pdf(tmp_path / "plain.pdf", toc=False, headings_in_large_type=False))
    assert plain.outline_source == "windows"
    assert [(u.page_start, u.page_end) for u in s.plan(plain)] == [(1, 2), (3, 4), (5, 5)]


def test_level_section_and_small_sections_merge(tmp_path):
    from pipeline.outline import DocText

    from ingest.types import Section, Span

    sections = [Section("1 A", 1, ("1 A",), 1, 4), Section("1.1 tiny", 2, ("1 A", "1.1 tiny"), 1, 1),
                Section("1.2 big", 2, ("1 A", "1.2 big"), 2, 4), Section("2 B", 1, ("2 B",), 5, 6)]
    spans = [Span("x " * 5, ("1 A", "1.1 tiny"), 1), Span("y " * 300, ("1 A", "1.2 big"), 2),
             Span("z " * 300, ("2 B",), 5)]
    doc = DocText("T", None, "pdf", "id", {i: str(i) for i in range(1, 7)}, 6, spans, sections)
    settings, _ = scfg(level="section", min_tokens=50)
    units = Summarizer(FakeLLM(), PromptSet(), SummaryCache(tmp_path / "c"), settings, GenerationOptions()).plan(doc)
    assert [(u.title, u.page_start, u.page_end) for u in units] == [("1.1 tiny / 1.2 big", 1, 4), ("2 B", 5, 6)]
    chapters = Summarizer(FakeLLM(), PromptSet(), SummaryCache(tmp_path / "c"), scfg(level="chapter")[0], GenerationOptions()).plan(doc)
    assert [u.title for u in chapters] == ["1 A", "2 B"]


def test_cli_errors_are_one_line(tmp_path):
    from conftest import run_cli

    bad = run_cli("--kb", str(tmp_path / "nokb"), "summarize", str(tmp_path / "missing.pdf"))
    assert bad.returncode != 0 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
    bad_level = run_cli("summarize", str(tmp_path / "x.pdf"), "--level", "paragraph")
    assert bad_level.returncode == 2 and "--level" in bad_level.stderr
