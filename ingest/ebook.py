"""E-books and other documents PyMuPDF opens besides PDF: EPUB, MOBI, FB2, XPS, CBZ.

They go through the PDF reader (:func:`ingest.pdf.read_document`): PyMuPDF lays a reflowable book
out into pages of a fixed size and gives its table of contents as an outline pointing at those
pages, so chapters become sections exactly like a PDF's bookmarks. Those page numbers are
*locations*: they depend on the layout below (A5-like pages, 11 pt type), not on any printed
edition, and are cited as "loc. 12". XPS pages are fixed pages; a CBZ is a comic book archive of
images, read by OCR.
"""

from __future__ import annotations

from pathlib import Path

from ingest.files import EBOOK_KINDS as KINDS, check_file
from ingest.types import ExtractedDocument
from syllabus_common.errors import IngestError

REFLOWABLE = frozenset({"epub", "mobi", "fb2"})
# Layout of reflowable books, in points: an A5-like page with 11 pt type (~350 words a page).
LAYOUT = dict(width=420, height=595, fontsize=11)


def extract_ebook(path: str | Path, ocr=None) -> ExtractedDocument:
    """``ocr``: an :class:`ingest.ocr.PageReader` for pages that are pictures (CBZ, scanned XPS)."""
    import pymupdf

    from ingest.pdf import read_document

    path = Path(path)
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise IngestError(f"{path}: not an e-book format ({', '.join(sorted(KINDS))})")
    check_file(path)
    pymupdf.TOOLS.mupdf_display_errors(False)
    try:
        doc = pymupdf.open(path, filetype=kind)
        if doc.is_reflowable:
            doc.layout(**LAYOUT)
        count = doc.page_count
    except Exception as exc:  # FileDataError, RuntimeError from MuPDF
        raise IngestError(f"{path}: corrupt or unreadable {kind.upper()} ({str(exc).strip() or type(exc).__name__})") from None
    if doc.needs_pass:
        doc.close()
        raise IngestError(f"{path}: the {kind.upper()} is encrypted (DRM); only DRM-free books can be read")
    if count == 0:
        doc.close()
        raise IngestError(f"{path}: {kind.upper()} has no pages")
    # A laid-out book has no running heads to strip; a line repeated on many of its pages is text.
    return read_document(doc, path, kind, strip_headers=False, ocr=ocr)
