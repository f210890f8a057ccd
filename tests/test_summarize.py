"""`summarize`: key points with the places that hold them, checked prose, faithfulness line, cache."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pymupdf
import pytest

from test_llm_support import ROOT, CountingLLM, FakeLLM, cache_env, fake_backend, llm_config, shared_llm

from pipeline.llm import GenerationOptions
from pipeline.evidence import squash
from pipeline.outline import DocText, from_pdf
from pipeline.prompting import PromptSet
from pipeline.sumcache import FILE, SummaryCache
from pipeline.summarize import Summarizer, render_markdown

sys.path.insert(0, str(ROOT / "eval"))
from summary_numbers import check as numbers_on_their_pages  # noqa: E402  (the check `make run` runs)

SAMPLE = ROOT / "tests" / "fixtures" / "gpu-memory-guide.pdf"
A5 = pymupdf.paper_rect("a5")
RIVERS = ("Rivers carry water from mountains to the sea. A river basin collects rain over a wide area. Floods "
          "happen when rain falls faster than the channel can carry it away. Deltas form where rivers slow down "
          "and drop their sediment. ") * 2
MOUNTAINS = ("Mountains rise where tectonic plates collide and fold the crust. Erosion by ice and water wears them "
             "down over millions of years. High mountains have thin air and cold climates with short summers. ") * 2
DESERTS = ("Deserts receive less than 250 millimetres of rain a year. Plants there store water in thick stems and "
           "have long roots. Sand dunes move with the wind and can bury roads. ") * 2
CHAPTERS = [("1 Rivers", [RIVERS]), ("2 Mountains", [MOUNTAINS, MOUNTAINS]), ("3 Deserts", [DESERTS])]
BULLET = re.compile(r"^- \[(\d+)\] (.+) \(([^()]+)\)$", re.M)


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


def summarizer(tmp_path, llm=None, embedder=None, write=True, **settings) -> Summarizer:
    return Summarizer(llm or FakeLLM(), PromptSet(), SummaryCache(tmp_path / "cache"), scfg(**settings)[0],
                      GenerationOptions(), embedder, write=write)


def points_of(messages) -> dict[str, str]:
    """The numbered key points the model was given."""
    return dict(re.findall(r"^\[(\d+)\] (.+)$", messages[-1]["content"], re.M))


# ----- key points carry the places that hold them


def test_summary_bullets_carry_pages_that_hold_their_sentences(kb_factory, embedder, cfg):
    """Against the knowledge base's own text of those pages, and the PDF's."""
    from pipeline.api import summarize

    kb = kb_factory()
    kb.ingest([SAMPLE])
    row = kb.catalog.documents()[0]
    chunks = kb.catalog.document_chunks(row.id)
    book = summarize(row.title, cfg, kb.path, llm=FakeLLM(), embedder=embedder, mode="extractive")
    with pymupdf.open(SAMPLE) as pdf:
        pdf_pages = {i + 1: squash(p.get_text()) for i, p in enumerate(pdf)}
    labels = kb.catalog.page_labels(row.id)
    markdown = render_markdown(book)
    for unit in book.units:
        assert unit.digest.points, unit.title
        for p in unit.digest.points:
            assert p.page in unit.pages and squash(p.text) in pdf_pages[p.page], (p.page, p.text)
            assert any(c.page_start <= p.page <= c.page_end and squash(p.text) in squash(c.text) for c in chunks), p.text
            assert p.where == f"p. {labels[p.page]}"
        assert [p.page for p in unit.digest.points] == sorted(p.page for p in unit.digest.points)  # reading order
    printed = BULLET.findall(markdown)
    assert len(printed) == sum(len(u.digest.points) for u in book.units) + len(book.overview.points)
    assert all(where.startswith("p. ") for _, _, where in printed)
    assert book.mode == "extractive" and book.model_calls == 0 and "claims checked: 0, unsupported dropped: 0" in markdown
    assert markdown.rstrip().endswith("pages summarized: 7/7\nclaims checked: 0, unsupported dropped: 0")
    assert numbers_on_their_pages(markdown, SAMPLE).off_page == []


def test_a_wrong_page_is_caught_by_the_demo_check(tmp_path, embedder):
    s = summarizer(tmp_path, embedder=embedder, write=False)
    doc = from_pdf(SAMPLE)
    markdown = render_markdown(s.run(doc, s.plan(doc)))
    moved = markdown.replace("GB of GPU memory with 16-bit base weights, which is within reach of a single 24 GB card. (p. 3)",
                             "GB of GPU memory with 16-bit base weights, which is within reach of a single 24 GB card. (p. 2)")
    assert moved != markdown
    report = numbers_on_their_pages(moved, SAMPLE)
    assert any("16 to 24" in miss for miss in report.off_page) and report.numbers > 10


def test_slides_and_ebook_locations_are_named_as_the_document_names_them(tmp_path, embedder):
    from pptx import Presentation

    from ingest.types import Section, Span
    from pipeline.outline import from_pdf as from_file

    deck = Presentation()
    for i, (title, body) in enumerate([("Rivers", RIVERS), ("Mountains", MOUNTAINS), ("Deserts", DESERTS)], 1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(tmp_path / "geo.pptx")
    s = summarizer(tmp_path, embedder=embedder, write=False, min_tokens=0)
    doc = from_file(tmp_path / "geo.pptx")
    book = s.run(doc, s.plan(doc))
    markdown = render_markdown(book)
    assert "## Mountains (slide 2)" in markdown and "(slides 1–3)" not in markdown
    places = [w for _, _, w in BULLET.findall(markdown)]
    assert places and all(re.fullmatch(r"slide \d", w) for w in places), places
    assert not re.search(r"\bpp?\. \d", markdown) and "## Whole deck" in markdown

    notes = tmp_path / "geo.md"
    notes.write_text(f"# Rivers\n\n{RIVERS}\n\n{RIVERS}\n\n# Mountains\n\n{MOUNTAINS}\n", encoding="utf-8")
    doc = from_file(notes)
    text = render_markdown(s.run(doc, s.plan(doc)))
    places = [w for _, _, w in BULLET.findall(text)]
    assert places and all(re.fullmatch(r"¶ \d", w) for w in places), places
    said = [t for _, t, _ in BULLET.findall(text.split("## Whole document")[0])]
    assert len(said) == len(set(said))  # a repeated paragraph is one point, not two
    assert "## Whole document" in text and not re.search(r"\bpp?\. \d", text)

    spans = [Span(RIVERS, ("1 Rivers",), page=1), Span(MOUNTAINS, ("2 Mountains",), page=4)]
    sections = [Section("1 Rivers", 1, ("1 Rivers",), 1, 3), Section("2 Mountains", 1, ("2 Mountains",), 4, 6)]
    epub = DocText("Geo", "geo.epub", "epub", "id", {i: str(i) for i in range(1, 7)}, 6, spans, sections)
    text = render_markdown(s.run(epub, s.plan(epub)))
    assert "## 1 Rivers (loc. 1–3)" in text and "(loc. 4)" in text and not re.search(r"\bpp?\. \d", text)


def test_a_lecture_is_summarized_in_time_windows_with_mm_ss(tmp_path, embedder):
    from ingest.asr.base import Segment
    from ingest.media_doc import time_sections
    from ingest.transcript import Transcript

    said = [RIVERS.split(". ")[0], RIVERS.split(". ")[1], MOUNTAINS.split(". ")[0], MOUNTAINS.split(". ")[1],
            DESERTS.split(". ")[0]]
    segments = [Segment(10.0 * i, 10.0 * i + 9, text + ".", -0.2, 0.01, 1.2, 0.0) for i, text in enumerate(said)]
    transcript = Transcript(source="talk.m4a", duration=50.0, language="en", language_probability=1.0,
                            backend="fake", model="fake", segments=segments)
    sections, spans = time_sections(transcript, 20.0, "talk")
    sections[2] = replace(sections[2], title="00:40–00:50 · Deserts")  # a window that showed a slide
    doc = DocText(title="talk", path="talk.m4a", kind="media", identity="x", labels={}, n_pages=0, spans=spans,
                  sections=sections, outline_source="time windows")
    fake = FakeLLM(reply=lambda m: " ".join(f"{t} [{n}]" for n, t in points_of(m).items()))
    s = summarizer(tmp_path, llm=fake, embedder=embedder, min_tokens=0)
    book = s.run(doc, s.plan(doc))
    assert [u.where for u in book.units] == ["00:00–00:20", "00:20–00:40", "00:40–00:50"]
    for unit in book.units:
        for p in unit.digest.points:
            assert unit.t_start <= p.t_start <= unit.t_end and re.fullmatch(r"\d\d:\d\d", p.where)
            assert any(p.text in seg.text or seg.text in p.text for seg in segments if seg.start <= p.t_start <= seg.end + 1)
    systems = [c["messages"][0]["content"] for c in fake.calls]
    assert systems and all("lecture" in m and "book" not in m for m in systems)
    markdown = render_markdown(book)
    assert "\n## 00:20–00:40\n" in markdown and "## Whole lecture" in markdown
    assert "\n## 00:40–00:50 · Deserts\n" in markdown  # the slide's title heads its window
    assert "sections summarized: 3/3" in markdown and not re.search(r"\bpp?\. ", markdown)


# ----- prose: checked, counted, never the prompt


def test_faithfulness_line_counts_every_checked_and_dropped_sentence(tmp_path, embedder):
    def one_wrong_one_right(messages):
        first = points_of(messages)["1"]
        return f"That part covers exactly 7321 square kilometres [1]. {first} [1]"

    fake = FakeLLM(reply=one_wrong_one_right)
    s = summarizer(tmp_path, llm=fake, embedder=embedder)
    doc = from_pdf(three_chapter_pdf(tmp_path / "geo.pdf"))
    book = s.run(doc, s.plan(doc))
    calls = len(fake.calls)
    assert calls == len(book.units) + 1 == 5  # every unit and the overview had points to write from
    assert (book.faithfulness.checked, book.faithfulness.dropped) == (2 * calls, calls)
    markdown = render_markdown(book)
    assert f"claims checked: {2 * calls}, unsupported dropped: {calls}" in markdown
    assert "7321" not in markdown
    for u in book.units:
        assert [v.supported for v in u.digest.verdicts] == [False, True]
        assert "7321" in u.digest.verdicts[0].reason and u.digest.prose.startswith(u.digest.points[0].text[:-1])
    # Again from the cache: same counts, no model call.
    again = summarizer(tmp_path, llm=fake, embedder=embedder).run(doc, s.plan(doc))
    assert again.model_calls == 0 and again.cache_hits == calls and again.faithfulness == book.faithfulness


def _cli_summarize(tmp_path, monkeypatch, embedder, reply, *args):
    from typer.testing import CliRunner

    import pipeline.onnx_embed
    from pipeline.cli import app

    config = tmp_path / "config.yaml"
    config.write_text("llm:\n  backend: fake\nsummarize:\n  mode: generative\n", encoding="utf-8")
    monkeypatch.setenv("SYLLABUS_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setattr(pipeline.onnx_embed, "embedder_for", lambda cfg: embedder)  # the session's model
    fake = FakeLLM(reply=reply)
    with fake_backend(fake):
        result = CliRunner().invoke(app, ["-q", "--config", str(config), "--kb", str(tmp_path / "no-kb"), "summarize",
                                          str(SAMPLE), *args])
    assert result.exit_code == 0, result.output[-2000:]
    return fake, result.stdout


def test_a_model_that_echoes_its_prompt_prints_none_of_the_instructions(tmp_path, monkeypatch, embedder):
    fake, out = _cli_summarize(tmp_path, monkeypatch, embedder, lambda m: "\n".join(x["content"] for x in m))
    assert len(fake.calls) == 8  # seven units and the overview
    template = PromptSet().get("key_points", "en")
    instructions = [s.strip() for s in re.split(r"(?<=\.)\s+|\{\w+\}", template.system + "\n" + template.user)
                    if len(s.split()) >= 3]
    assert instructions and "Key points of" in template.user
    for sentence in instructions:
        assert sentence not in out, sentence
    assert "Key points of" not in out and "square brackets" not in out and "You rewrite" not in out
    dropped = int(re.search(r"unsupported dropped: (\d+)", out).group(1))
    assert dropped >= 8 * 3  # at least the instructions' sentences of every call
    assert len(BULLET.findall(out)) > 8  # the key points remain


def test_json_carries_bullets_with_pages_verdicts_and_counts(tmp_path, monkeypatch, embedder):
    def lie(messages):
        points = points_of(messages)
        return f"{points['1'].rstrip('.')} [1]. It needs 999 GB [1]."

    _, out = _cli_summarize(tmp_path, monkeypatch, embedder, lie, "--json")
    data = json.loads(out)
    assert data["mode"] == "generative" and data["coverage"] == "pages summarized: 7/7"
    faith = data["faithfulness"]
    assert (faith["checked"], faith["dropped"]) == (16, 8) and faith["line"] == "claims checked: 16, unsupported dropped: 8"
    lora = next(u for u in data["units"] if u["title"].startswith("3 Fine-tuning"))
    assert lora["where"] == "p. 3" and all(p["page_label"] == "3" and p["where"] == "p. 3" for p in lora["points"])
    assert [v["supported"] for v in lora["verdicts"]] == [True, False]
    assert {"cited", "matched", "reason", "claims"} <= set(lora["verdicts"][1]) and "999" not in lora["prose"]
    assert data["overview"]["points"] and all(p["where"].startswith("p. ") for p in data["overview"]["points"])


def test_a_prompt_that_does_not_fit_is_written_from_fewer_points_never_cut(tmp_path, embedder):
    fake = FakeLLM(context=150, reply=lambda m: " ".join(f"{t} [{n}]" for n, t in points_of(m).items()))
    s = summarizer(tmp_path, llm=fake, embedder=embedder, summary_tokens=40, book_tokens=40)
    doc = from_pdf(SAMPLE)
    book = s.run(doc, s.plan(doc))
    assert fake.calls and all(c["prompt_tokens"] + c["max_new_tokens"] <= 150 for c in fake.calls)
    shortened = [u for u in book.units if u.digest.verdicts and len(u.digest.verdicts) < len(u.digest.points)]
    assert shortened  # some prose came from the first points only, every point still a bullet
    assert all(v.supported for u in book.units for v in u.digest.verdicts)


# ----- the real model: generative prose on the sample book, interrupted and resumed from its cache


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Run `syllabus summarize` in a process, SIGKILL it once a few results are cached, then resume the
    same summary in this process with the same (real) model, counting model calls; then run it again."""
    base = tmp_path_factory.mktemp("resume")
    cache_dir = base / "cache"
    env = cache_env(cache_dir)
    config = base / "config.yaml"
    config.write_text("llm:\n  context: 2048\nsummarize:\n  mode: generative\n  summary_tokens: 40\n  book_tokens: 48\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", "--config", str(config), "--kb", str(base / "no-kb"), "summarize",
         str(SAMPLE), "--json"], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    db = cache_dir / FILE
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    if con.execute("SELECT COUNT(*) FROM summaries").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.1)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert still_running, f"summarize ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}"
    with sqlite3.connect(db) as con:
        cached = con.execute("SELECT COUNT(*) FROM summaries").fetchone()[0]

    from pipeline.api import summarize
    from pipeline.onnx_embed import embedder_for

    cfg = llm_config(context=2048)
    cfg = cfg.model_copy(update={"summarize": cfg.summarize.model_copy(update=dict(summary_tokens=40, book_tokens=48))})
    counting = CountingLLM(shared_llm())
    book = summarize(SAMPLE, cfg, llm=counting, cache_dir=cache_dir, embedder=embedder_for(cfg), mode="generative")
    out = base / "sample.md"
    again = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "--config", str(config), "--kb", str(base / "no-kb"), "summarize",
         str(SAMPLE), "-o", str(out), "--json"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    return cached, counting.calls, book, json.loads(again.stdout), out.read_text(encoding="utf-8")


def test_interrupted_summarize_resumes_without_redoing_cached_calls(interrupted):
    cached, calls, book, rerun, markdown = interrupted
    assert cached >= 2
    assert book.cache_hits == cached  # every result the killed run committed was used
    assert calls == book.model_calls >= 1 and cached + calls == len(book.units) + 1  # only the rest went to the model
    assert rerun["model_calls"] == 0 and rerun["cache_hits"] == cached + calls  # a re-run is instant
    assert markdown == render_markdown(book)
    assert rerun["faithfulness"]["line"] == book.faithfulness.line


def test_real_model_summary_states_no_number_off_its_page(interrupted):
    _, _, book, _, markdown = interrupted
    assert "## 3 Fine-tuning with LoRA and QLoRA (p. 3)" in markdown and "## Whole book" in markdown
    assert "pages summarized: 7/7" in markdown and book.faithfulness.line in markdown
    assert book.faithfulness.checked >= 1  # the model wrote prose, and it was checked
    report = numbers_on_their_pages(markdown, SAMPLE)
    assert report.bullets > 7 and report.off_page == [], report.off_page


# ----- planning: units from the outline


def test_huge_chapter_without_subsections_is_split_into_page_windows(tmp_path):
    doc = pymupdf.open()
    outline = []
    for c, (first, last) in enumerate(((1, 10), (11, 30), (31, 40)), 1):
        for p in range(first, last + 1):
            page = doc.new_page(width=A5.width, height=A5.height)
            words = " ".join(f"w{p}x{i % 37}" for i in range(120))  # no line repeats: nothing is a running head
            page.insert_textbox(pymupdf.Rect(20, 20, A5.width - 20, A5.height - 20), words, fontsize=6)
            if p == first:
                outline.append([1, f"Chapter {c}", p])
    doc.set_toc(outline)
    doc.save(tmp_path / "long.pdf")
    units = summarizer(tmp_path, max_pages=12, window_pages=8).plan(from_pdf(tmp_path / "long.pdf"))
    assert [(u.title, u.page_start, u.page_end) for u in units] == [
        ("Chapter 1", 1, 10), ("Chapter 2 (part 1/3)", 11, 18), ("Chapter 2 (part 2/3)", 19, 26),
        ("Chapter 2 (part 3/3)", 27, 30), ("Chapter 3", 31, 40)]
    assert sorted(p for u in units for p in u.pages) == list(range(1, 41))


def test_without_a_toc_headings_are_detected_else_page_windows(tmp_path):
    s = summarizer(tmp_path, window_pages=2)
    doc = from_pdf(three_chapter_pdf(tmp_path / "headings.pdf", toc=False))
    assert doc.outline_source == "headings"
    assert [u.title for u in s.plan(doc)][-3:] == ["1 Rivers", "2 Mountains", "3 Deserts"]
    plain = from_pdf(three_chapter_pdf(tmp_path / "plain.pdf", toc=False, headings_in_large_type=False))
    assert plain.outline_source == "windows"
    assert [(u.page_start, u.page_end) for u in s.plan(plain)] == [(1, 2), (3, 4), (5, 5)]


def test_level_section_and_small_sections_merge(tmp_path):
    from ingest.types import Section, Span

    sections = [Section("1 A", 1, ("1 A",), 1, 4), Section("1.1 tiny", 2, ("1 A", "1.1 tiny"), 1, 1),
                Section("1.2 big", 2, ("1 A", "1.2 big"), 2, 4), Section("2 B", 1, ("2 B",), 5, 6)]
    spans = [Span("x " * 5, ("1 A", "1.1 tiny"), 1), Span("y " * 300, ("1 A", "1.2 big"), 2),
             Span("z " * 300, ("2 B",), 5)]
    doc = DocText("T", None, "pdf", "id", {i: str(i) for i in range(1, 7)}, 6, spans, sections)
    units = summarizer(tmp_path, level="section", min_tokens=50).plan(doc)
    assert [(u.title, u.page_start, u.page_end) for u in units] == [("1.1 tiny / 1.2 big", 1, 4), ("2 B", 5, 6)]
    assert [u.title for u in summarizer(tmp_path, level="chapter").plan(doc)] == ["1 A", "2 B"]


def test_cli_errors_are_one_line(tmp_path):
    from conftest import run_cli

    bad = run_cli("--kb", str(tmp_path / "nokb"), "summarize", str(tmp_path / "missing.pdf"))
    assert bad.returncode != 0 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1  # no bar's blank line
    bad_level = run_cli("summarize", str(tmp_path / "x.pdf"), "--level", "paragraph")
    assert bad_level.returncode == 2 and "--level" in bad_level.stderr
    bad_mode = run_cli("summarize", str(SAMPLE), "--mode", "creative")
    assert bad_mode.returncode == 2 and "--mode" in bad_mode.stderr and "Traceback" not in bad_mode.stderr
