"""Everything a student reads: e-books, slide decks and notes with their sections; scanned pages read
by the real OCR engine (cached, marked as OCR); slides found in a lecture video and indexed beside
its transcript. Fixtures: tests/fixtures/make_formats.py and make_lecture_video.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asr_fakes import MEDIA, fake  # noqa: F401 (fixture)
from conftest import ROOT
from fixtures.make_formats import CHAPTERS, SLIDES
from fixtures.make_lecture_video import TEST_DECK

FORMATS = Path(__file__).parent / "fixtures" / "formats"


def _cfg(**overrides):
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml", overrides=overrides)


@pytest.fixture(scope="module")
def course_kb(tmp_path_factory, embedder):
    """One knowledge base holding a file of every course format and the scanned page."""
    from pipeline.kb import KnowledgeBase

    path = tmp_path_factory.mktemp("course") / "kb"
    kb = KnowledgeBase(_cfg(), path, embedder=embedder, create=True)
    names = ["book.epub", "slides.pptx", "notes.docx", "notes.md", "notes.html", "scan.pdf"]
    outcomes = kb.ingest([FORMATS / n for n in names])
    assert [o.status for o in outcomes] == ["added"] * len(names), [o.message for o in outcomes]
    yield kb
    kb.close()


@pytest.mark.parametrize("name, kind", [("book.epub", "epub"), ("notes.docx", "docx"), ("notes.md", "md"),
                                        ("notes.html", "html")])
def test_search_finds_the_chapter_a_phrase_is_in(course_kb, name, kind):
    docs = {Path(d.path).name: d for d in course_kb.documents()}
    assert docs[name].kind == kind and docs[name].n_sections >= len(CHAPTERS)
    for title, body in CHAPTERS:
        phrase = " ".join(body.split(". ")[1].split()[:4])  # "The lighthouse rule says"
        [hit] = course_kb.search(phrase, k=1, docs=[name])
        assert hit.section.split(" > ")[-1] == title, (phrase, hit.section)


def test_epub_chapters_come_from_its_table_of_contents_with_locations(course_kb):
    [doc] = [d for d in course_kb.documents() if d.kind == "epub"]
    sections = course_kb.catalog.sections(doc.id)
    assert [s["title"] for s in sections] == [t for t, _ in CHAPTERS]
    assert all(s["page_start"] >= 1 for s in sections)  # PyMuPDF's layout locations
    assert doc.title == "A Small Book of GPU Memory"


def test_pptx_is_one_section_per_slide_with_notes_and_slide_numbers(course_kb):
    [doc] = [d for d in course_kb.documents() if d.kind == "pptx"]
    assert [s["title"] for s in course_kb.catalog.sections(doc.id)] == [t for t, _, _ in SLIDES]
    [hit] = course_kb.search("pelican schedule", k=1, docs=["slides.pptx"])  # only in slide 3's notes
    assert hit.page_start == 3 and hit.section == SLIDES[2][0]


def test_scanned_page_is_read_by_ocr_and_marked(course_kb):
    [hit] = course_kb.search("gradient checkpointing trades compute for memory", k=1, docs=["scan.pdf"])
    assert hit.chunk_kind == "ocr" and hit.page_start == 1
    words = set(hit.text.lower().split())
    assert {"gradient", "checkpointing", "trades", "compute", "memory."} <= words, hit.text
    assert list((course_kb.path / "cache" / "ocr").glob("*.json"))


def test_ocr_is_cached_by_page_image_and_a_text_layer_is_never_read(tmp_path):
    from ingest.ocr import PageReader
    from ingest.pdf import extract_pdf

    first = PageReader(cache_dir=tmp_path)
    doc = extract_pdf(FORMATS / "scan.pdf", ocr=first)
    assert first.recognised == 1 and doc.pages[0].ocr and not doc.pages[0].has_text_layer
    again = PageReader(cache_dir=tmp_path)
    assert extract_pdf(FORMATS / "scan.pdf", ocr=again).pages[0].text == doc.pages[0].text
    assert again.recognised == 0
    layered = PageReader(cache_dir=tmp_path)
    book = extract_pdf(ROOT / "tests" / "fixtures" / "gpu-memory-guide.pdf", ocr=layered)
    assert layered.recognised == 0 and not any(p.ocr for p in book.pages)


def test_ocr_never_leaves_a_scan_unread_and_says_so(tmp_path):
    from ingest.formats import extract_document
    from pipeline.errors import IngestError

    with pytest.raises(IngestError, match="no extractable text.*OCR"):
        extract_document(FORMATS / "scan.pdf", _cfg(**{"ocr.enabled": "never"}), tmp_path)


def test_traditional_chinese_ocr_output_is_made_traditional():
    from ingest.ocr import chinese_script, normalize_script

    mixed = "模型参數量為七十億時，半精度需要約十四吉位元組的記憶體"  # 参: a Simplified form among Traditional
    assert chinese_script(mixed) == "traditional"
    assert "參數" in normalize_script(mixed, ("en", "zh-TW"))
    assert normalize_script("Adam keeps two moments", ("en", "zh-TW")) == "Adam keeps two moments"


@pytest.mark.parametrize("name, content", [("broken.epub", b"PK\x03\x04 not really a zip"),
                                           ("broken.pptx", b"not a zip at all"), ("empty.docx", b"")])
def test_a_broken_course_file_is_one_clear_error(tmp_path, name, content):
    from ingest.formats import extract_document
    from pipeline.errors import IngestError

    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(IngestError) as info:
        extract_document(bad, _cfg(), tmp_path)
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)


def test_slides_are_found_once_each_with_their_time_ranges(tmp_path):
    from ingest.ocr import ImageReader
    from ingest.slides import SlideSettings, find_slides

    slides = find_slides(MEDIA / "slides.mp4", SlideSettings(), ImageReader(cache_dir=tmp_path))
    assert [s.title for s in slides] == [t for t, _ in TEST_DECK]
    assert [(s.t_start, s.t_end) for s in slides] == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)]
    assert "moments" in slides[1].text
    # a still picture (no slide change) and an audio file have no slides
    assert find_slides(MEDIA / "clean.mp4", SlideSettings(), ImageReader(cache_dir=tmp_path)) == []
    assert find_slides(MEDIA / "clean.m4a", SlideSettings(), ImageReader(cache_dir=tmp_path)) == []


def test_slide_text_is_indexed_beside_the_transcript_with_its_time_range(fake, embedder, tmp_path):
    from pipeline.kb import KnowledgeBase

    cfg = _cfg(**{"asr.backend": "fake", "asr.section_seconds": 60})
    video = tmp_path / "slides.mp4"
    shutil.copy(MEDIA / "slides.mp4", video)
    with KnowledgeBase(cfg, tmp_path / "kb", embedder=embedder, create=True) as kb:
        [outcome] = kb.ingest([video])
        assert outcome.status == "added", outcome.message
        [hit] = kb.search("Adam keeps two moments per weight", k=1)
        assert hit.chunk_kind == "slide" and (hit.t_start, hit.t_end) == (3.0, 6.0)
        kinds = {r[0] for r in kb.catalog.db.execute("SELECT kind FROM chunks")}
        assert kinds == {None, "slide"}  # transcript chunks beside slide chunks
        [window] = [s for s in kb.catalog.sections(outcome.doc_id) if s["level"] == 1]
        assert "GPU Memory Basics" in window["title"] and window["title"].startswith("00:00–00:09")


def test_citations_name_the_place_in_the_words_of_the_format():
    from syllabus_common.places import located

    assert located("p. 12", "pdf", "ocr", 12, 12) == "p. 12, OCR"
    assert located("p. 12", "pptx", None, 12, 12) == "slide 12"
    assert located("pp. 3–4", "epub", None, 3, 4) == "loc. 3–4"
    assert located("12:30–14:05", "media", "slide", None, None, 750.0, 845.0) == "slide, 12:30–14:05"
    assert located("12:30–14:05", "media", None, None, None, 750.0, 845.0) == "12:30–14:05"
