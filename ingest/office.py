"""Course files from office suites: PPTX slide decks (python-pptx) and DOCX notes (python-docx).

A deck is paged by slide: slide N is page N (its label the slide number, so citations read
"slide 12"), one section per slide titled by the slide's title, with the speaker notes after the
slide text. A DOCX has no fixed pages; its heading styles become the section tree.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from ingest.files import check_file
from ingest.markup import Block, document
from ingest.types import ExtractedDocument, Page, Section, Span
from syllabus_common.errors import IngestError


def _open_zip(path: Path, what: str, opener):
    check_file(path)
    if not zipfile.is_zipfile(path):
        raise IngestError(f"{path}: not a {what} file (not a zip container)")
    try:
        return opener(str(path))
    except Exception as exc:  # python-pptx / python-docx raise KeyError, PackageNotFoundError, lxml errors
        raise IngestError(f"{path}: corrupt or unreadable {what} ({type(exc).__name__}: {exc})") from None


def _shape_texts(shapes) -> list[str]:
    """Text of the shapes on a slide, groups and tables included, top to bottom."""
    out = []
    for shape in sorted(shapes, key=lambda s: ((s.top or 0), (s.left or 0))):
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            out += _shape_texts(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                out.append(" | ".join(cell.text.strip() for cell in row.cells))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = shape.text_frame.text.strip()
            if text:
                out.append(text)
    return out


def extract_pptx(path: str | Path) -> ExtractedDocument:
    from pptx import Presentation

    path = Path(path)
    deck = _open_zip(path, "PPTX", Presentation)
    pages, sections, spans = [], [], []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text.split()) if title_shape is not None and title_shape.has_text_frame else ""
        body = _shape_texts([s for s in slide.shapes if title_shape is None or s.shape_id != title_shape.shape_id])
        notes = ""
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
        text = "\n".join([title] * bool(title) + body + ([f"Notes: {notes}"] if notes else []))
        pages.append(Page(number=number, label=str(number), text=text, has_text_layer=bool(text.strip())))
        heading = title or f"Slide {number}"
        section = Section(title=heading, level=1, path=(heading,), page_start=number, page_end=number)
        sections.append(section)
        if text.strip():
            spans.append(Span(text=text, section_path=section.path, page=number))
    if not spans:
        raise IngestError(f"{path}: no text on any of its {len(pages)} slides")
    props = deck.core_properties
    empty = [p.number for p in pages if not p.has_text_layer]
    warnings = [f"{len(empty)} slide(s) without text: {', '.join(map(str, empty[:10]))}"] if empty else []
    return ExtractedDocument(path=str(path), kind="pptx", title=(props.title or "").strip() or path.stem,
                             author=(props.author or "").strip(), pages=pages, sections=sections, spans=spans,
                             warnings=warnings)


_HEADING = re.compile(r"^(?:Heading|標題)\s*(\d)$", re.IGNORECASE)


def _docx_blocks(doc) -> list[Block]:
    """Paragraphs and tables in body order; a "Heading N" style is a level-N heading, "Title" level 0."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[Block] = []
    for item in doc.iter_inner_content():
        if isinstance(item, Paragraph):
            style = item.style.name if item.style is not None else ""
            m = _HEADING.match(style or "")
            level = int(m.group(1)) if m else (0 if style == "Title" else None)
            blocks.append((level, item.text))
        elif isinstance(item, Table):
            rows = [" | ".join(c.text.strip() for c in row.cells) for row in item.rows]
            blocks.append((None, "\n".join(rows)))
    return blocks


def extract_docx(path: str | Path) -> ExtractedDocument:
    import docx

    path = Path(path)
    doc = _open_zip(path, "DOCX", docx.Document)
    blocks = _docx_blocks(doc)
    titles = [text for level, text in blocks if level == 0 and text.strip()]
    blocks = [(None if level == 0 else level, text) for level, text in blocks]  # the title is not a chapter
    props = doc.core_properties
    title = (props.title or "").strip() or (titles[0].strip() if titles else "")
    return document(path, "docx", [b for b in blocks if not (titles and b == (None, titles[0]))],
                    title=title, author=(props.author or "").strip())
