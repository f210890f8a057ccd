"""PDF extraction with PyMuPDF: pages with printed labels, the outline as a section tree, metadata.

Every failure a user can cause (encrypted, corrupt, empty, not a PDF, no text at all) raises
:class:`IngestError` with a one-line reason; the caller decides whether the batch goes on.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ingest.clean import clean_pages
from ingest.types import ExtractedDocument, Page, Section, Span
from syllabus_common.errors import IngestError

log = logging.getLogger(__name__)


def _open(path: Path):
    import pymupdf

    from ingest.files import check_file

    check_file(path)
    with path.open("rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise IngestError(f"{path}: not a PDF (no %PDF header)")
    pymupdf.TOOLS.mupdf_display_errors(False)  # its messages go to stderr; ours are one line
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises FileDataError / RuntimeError subclasses
        raise IngestError(f"{path}: corrupt or unreadable PDF ({str(exc).strip() or type(exc).__name__})") from None
    if doc.needs_pass:
        doc.close()
        raise IngestError(f"{path}: encrypted PDF needs a password; decrypt it first (e.g. qpdf --decrypt)")
    if doc.page_count == 0:
        doc.close()
        raise IngestError(f"{path}: PDF has no pages")
    return doc


def _sections_from_toc(toc: list[list], page_count: int) -> list[Section]:
    """Outline entries → sections with inclusive physical page ranges.

    A section ends where the next entry at the same or a higher level begins (on that page when the
    next one starts mid-page is unknowable from the outline, so the shared page belongs to both).
    """
    entries = []
    for item in toc:
        level, title, page = int(item[0]), str(item[1]).strip(), int(item[2])
        if page < 1 or page > page_count or not title:
            continue  # outline entries pointing nowhere (external links, deleted pages)
        entries.append((level, title, page))
    sections: list[Section] = []
    stack: list[str] = []
    for i, (level, title, page) in enumerate(entries):
        del stack[level - 1 :]
        while len(stack) < level - 1:
            stack.append("")  # a skipped outline level
        stack.append(title)
        end = page_count
        for later_level, _, later_page in entries[i + 1 :]:
            if later_level <= level:
                end = max(page, later_page - 1 if later_page > page else page)
                break
        sections.append(Section(title=title, level=level, path=tuple(s for s in stack if s), page_start=page, page_end=end))
    return sections


def _title_offset(text: str, title: str, start: int) -> int | None:
    """Where a section heading appears on its first page at or after ``start``.

    A heading on a line of its own, perhaps after a number the outline leaves out ("7.1 The
    read.table() function" for the entry "The read.table() function"), wins over the same words in
    running text; failing that, the first loose match (spaces and case ignored).
    """
    words = [re.escape(w) for w in title.split()]
    if not words:
        return None
    body = r"\s+".join(words)
    heading = re.compile(r"^[ \t]*(?:[\dA-Z]{1,3}(?:\.\d+)*\.?[ \t]+)?" + body + r"[ \t]*$", re.IGNORECASE | re.MULTILINE)
    m = heading.search(text, start) or re.compile(body, re.IGNORECASE).search(text, start)
    return m.start() if m else None


def _spans(pages: list[Page], sections: list[Section]) -> list[Span]:
    """Cut each page's text at the headings that start on it, so every span has one section path.

    Headings are looked for in outline order, each after the previous one; a heading not found on
    its page (reworded in the outline) starts where the previous cut is.
    """
    starts: dict[int, list[Section]] = {}
    for s in sections:
        starts.setdefault(s.page_start, []).append(s)
    current: tuple[str, ...] = ()
    spans: list[Span] = []
    for page in pages:
        if not page.text:
            continue
        pos = 0
        kind = "ocr" if page.ocr else None
        for s in starts.get(page.number, []):
            offset = _title_offset(page.text, s.title, pos)
            offset = pos if offset is None else offset
            if offset > pos and page.text[pos:offset].strip():
                spans.append(Span(text=page.text[pos:offset].strip(), section_path=current, page=page.number,
                                  kind=kind))
            pos = offset
            current = s.path
        rest = page.text[pos:].strip()
        if rest:
            spans.append(Span(text=rest, section_path=current, page=page.number, kind=kind))
    return spans


def extract_pdf(path: str | Path, strip_headers: bool = True, ocr=None) -> ExtractedDocument:
    """A PDF as pages, outline and spans. ``ocr``: an :class:`ingest.ocr.PageReader` that reads the
    pages without a usable text layer (None: such pages are reported, not read)."""
    path = Path(path)
    return read_document(_open(path), path, "pdf", strip_headers=strip_headers, ocr=ocr)


def _page_text(doc, index: int, flags: int, ocr) -> tuple[str, str, bool, bool]:
    """(text, label, has images, read by OCR) of one page."""
    page = doc.load_page(index)
    text = page.get_text("text", flags=flags)  # content-stream order; sort=True costs 13x
    label = (page.get_label() if doc.is_pdf else "") or str(index + 1)  # labels are a PDF feature
    has_images = bool(page.get_images(full=False))
    if ocr is not None and ocr.wanted(page, text):
        return ocr.read(page), label, has_images, True
    return text, label, has_images, False


def read_document(doc, path: Path, kind: str, strip_headers: bool = True, ocr=None) -> ExtractedDocument:
    """Any document PyMuPDF opened (PDF, EPUB, MOBI, FB2, XPS, CBZ): pages, outline, metadata.

    Takes ownership of ``doc`` and closes it. Pages of a reflowable book are the ones PyMuPDF lays
    out; their numbers are locations, not printed pages."""
    import pymupdf

    # PyMuPDF's text defaults minus ligature preservation, so "ﬁne" comes out as "fine".
    flags = pymupdf.TEXTFLAGS_TEXT & ~pymupdf.TEXT_PRESERVE_LIGATURES
    try:
        raw_pages: list[str] = []
        labels: list[str] = []
        image_pages: set[int] = set()
        ocr_pages: set[int] = set()
        # MuPDF rebuilds a broken cross-reference table (a truncated download, a crashed writer) and
        # says so in is_repaired: such a file is damaged, not scanned, whatever its pages hold.
        repaired = bool(getattr(doc, "is_repaired", False))
        for index in range(doc.page_count):
            try:
                text, label, has_images, by_ocr = _page_text(doc, index, flags, ocr)
            except IngestError:
                raise
            except Exception as exc:
                if not repaired:
                    raise IngestError(f"{path}: page {index + 1} is damaged ({exc})") from None
                text, label, has_images, by_ocr = "", str(index + 1), False, False
            raw_pages.append(text)
            labels.append(label)
            if by_ocr:
                ocr_pages.add(index + 1)
            elif not text.strip() and has_images:
                image_pages.add(index + 1)
        toc = doc.get_toc(simple=True)
        meta = doc.metadata or {}
        page_count = doc.page_count
    finally:
        doc.close()

    cleaned = clean_pages(raw_pages, labels, strip_headers=strip_headers)
    pages = [
        Page(number=i + 1, label=labels[i], text=cleaned[i],
             has_text_layer=bool(raw_pages[i].strip()) and (i + 1) not in ocr_pages, ocr=(i + 1) in ocr_pages)
        for i in range(page_count)
    ]
    readable = sum(1 for p in pages if p.text)
    what = "PDF" if kind == "pdf" else kind.upper()
    if repaired:
        state = f"damaged or truncated {what} (repaired; {readable} of {page_count} pages readable)"
        if not readable:
            raise IngestError(f"{path}: {state}; get a complete copy of the file")
    if not readable:
        hint = "turn on OCR (ocr.enabled: auto)" if ocr is None else "OCR found no text either"
        raise IngestError(f"{path}: no extractable text on any of its {page_count} pages (a scan? {hint})")
    if kind == "pdf":
        sections, outline_source = _outline(path, toc, page_count)
    else:  # an e-book's table of contents, or nothing: font sizes of a laid-out book say little
        sections = _sections_from_toc(toc, page_count)
        outline_source = "toc" if sections else "windows"
    warnings = [state + "; the rest is indexed"] if repaired else []
    if ocr_pages:
        warnings.append(f"{len(ocr_pages)} page(s) without a text layer read by OCR: {_listed(ocr_pages)}")
    if image_pages:
        warnings.append(f"{len(image_pages)} page(s) have no text layer (images only), not searchable: {_listed(image_pages)}")
    blank = [p.number for p in pages if not p.has_text_layer and p.number not in image_pages | ocr_pages]
    if blank and len(blank) == page_count:
        warnings.append("every page is blank")
    title = (meta.get("title") or "").strip() or path.stem
    return ExtractedDocument(
        path=str(path),
        kind=kind,
        title=title,
        author=(meta.get("author") or "").strip(),
        pages=pages,
        sections=sections,
        spans=_spans(pages, sections),
        warnings=warnings,
        outline_source=outline_source,
    )


def _listed(numbers: set[int]) -> str:
    return ", ".join(str(n) for n in sorted(numbers)[:10]) + (" …" if len(numbers) > 10 else "")


def _outline(path: Path, toc: list[list], page_count: int) -> tuple[list[Section], str]:
    """The PDF's own outline; without one, headings detected by font size; without those, none
    (a summary then reads the book in page windows). The knowledge base and the summarizer both
    take the sections from here."""
    sections = _sections_from_toc(toc, page_count)
    if sections:
        return sections, "toc"
    from ingest.headings import detect_headings

    try:
        headings = detect_headings(path)
    except Exception as exc:  # a damaged page: the outline is a convenience, the text is already read
        log.debug("%s: no headings detected (%s)", path, exc)
        headings = []
    sections = _sections_from_toc(headings, page_count)
    return sections, "headings" if sections else "windows"
