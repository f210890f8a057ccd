"""PDF extraction with the real PyMuPDF on generated files."""

from __future__ import annotations

import pytest

import pdfgen
from ingest.clean import clean_pages, join_hyphenation
from ingest.pdf import extract_pdf
from syllabus_common.errors import IngestError


def test_pages_labels_sections_metadata(topic_pdf):
    doc = extract_pdf(topic_pdf)
    assert doc.title == "A Book of Small Facts" and doc.author == "Test Author"
    assert [p.label for p in doc.pages] == ["i", "ii", "1", "2", "3", "4", "5", "6"]
    assert [p.number for p in doc.pages] == list(range(1, 9))
    chapters = [s for s in doc.sections if s.title.endswith("Glaciers")]
    assert len(chapters) == 1 and (chapters[0].page_start, chapters[0].page_end) == (6, 6)
    # Spans carry the section of the heading that starts them.
    glacier_spans = [s for s in doc.spans if "U-shaped" in s.text]
    assert glacier_spans and glacier_spans[0].page == 6 and glacier_spans[0].section_path == ("4 Glaciers",)


def test_running_heads_and_folios_removed(topic_pdf):
    doc = extract_pdf(topic_pdf)
    for page in doc.pages:
        assert "field notes" not in page.text
        assert page.text.splitlines()[-1].strip() != page.label


def test_header_detection_keeps_body_and_strips_numbered_heads():
    topics = ["vectors", "indices", "recycling", "arithmetic", "missing values"]
    pages = [
        f"Chapter 2: Vectors {n}\nThe page about {t} starts here.\nSome detail on {t} follows.\n"
        f"An example of {t} in use.\nA closing remark on {t}."
        for n, t in zip(range(5, 10), topics)
    ]
    cleaned = clean_pages(pages, labels=[str(n) for n in range(5, 10)])
    assert all(not c.startswith("Chapter 2") for c in cleaned)
    assert all(c.startswith("The page about") and c.endswith(".") for c in cleaned)
    assert all(len(c.splitlines()) == 4 for c in cleaned)


def test_head_beside_a_folio_line_is_stripped_but_a_chapter_opening_title_is_kept():
    # texinfo manuals: "Chapter 2: Data" on one line, its folio "12" on the next; each chapter's head
    # is on too few pages to be a repeated line, so only the folio beside it tells it apart
    pages, n = [], 11
    for chapter in ("2: Data", "3: Models"):
        pages.append(f"{n}\n{chapter[0]} {chapter[3:]}\nThe chapter opens here.\nIt has a first example.")
        n += 1
        for _ in range(3):
            pages.append(f"Chapter {chapter}\n{n}\nPage {n} explains one argument.\nIts default suits most files.\nOne more.")
            n += 1
    cleaned = clean_pages(pages, labels=[str(i) for i in range(11, n)])
    assert cleaned[0].startswith("2 Data") and cleaned[4].startswith("3 Models")  # a chapter's own title stays
    assert all(c.startswith("Page ") and "Chapter" not in c for i, c in enumerate(cleaned) if i not in (0, 4))


def test_a_short_chapters_head_is_stripped_where_the_books_heads_stand():
    # a chapter of two pages shows its head once; the book's other heads show where heads stand (top
    # edge, head then folio), so that one is a head too, while a chapter's opening page, whose folio
    # stands elsewhere, keeps its first line
    pages, n = [], 11
    for chapter, length in (("2: Data", 3), ("3: Models", 1), ("4: Plots", 3)):
        pages.append(f"{n}\n{chapter[0]} {chapter[3:]}\nThe chapter opens here.\nIt has a first example.")
        n += 1
        for _ in range(length):
            pages.append(f"Chapter {chapter}\n{n}\nPage {n} explains one argument.\nIts default suits most files.\n"
                         f"See also page {n + 9}.\nThen argument {n * 2}.")
            n += 1
    cleaned = clean_pages(pages, labels=[str(i) for i in range(11, n)])
    openings = (0, 4, 6)
    assert [cleaned[i].split("\n")[0] for i in openings] == ["2 Data", "3 Models", "4 Plots"]
    assert cleaned[5].startswith("Page 16") and "Chapter" not in cleaned[5]
    assert all(c.startswith("Page ") for i, c in enumerate(cleaned) if i not in openings)


def test_hyphenation_joined_only_inside_words():
    assert join_hyphenation("estim-\nate the GPU-\nMemory") == "estimate the GPU-\nMemory"


def test_image_only_page_is_reported_not_dropped(tmp_path):
    doc = extract_pdf(pdfgen.image_only_page_pdf(tmp_path / "scan.pdf"))
    assert len(doc.pages) == 2
    assert doc.pages[1].has_text_layer is False
    assert doc.image_only_pages == [2]
    assert any("no text layer" in w for w in doc.warnings)


@pytest.mark.parametrize("kind", ["encrypted", "truncated", "empty", "text", "missing"])
def test_bad_files_raise_one_line_ingest_error(tmp_path, topic_pdf, kind):
    path = tmp_path / f"{kind}.pdf"
    if kind == "encrypted":
        pdfgen.encrypted_pdf(path)
    elif kind == "truncated":
        pdfgen.truncated_pdf(topic_pdf, path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("just some notes, renamed to .pdf\n")
    with pytest.raises(IngestError) as info:
        extract_pdf(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    expected = {"encrypted": "encrypted", "truncated": "corrupt", "empty": "empty", "text": "not a PDF", "missing": "no such file"}
    assert expected[kind] in message


def test_pdf_without_any_text_is_an_error(tmp_path):
    import pymupdf

    path = tmp_path / "blank.pdf"
    doc = pymupdf.open()
    doc.new_page()
    doc.save(path)
    with pytest.raises(IngestError, match="no extractable text"):
        extract_pdf(path)
