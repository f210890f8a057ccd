"""What every document reader shares: the extensions each one takes and the checks every file gets.
A leaf: the readers and the dispatcher (:mod:`ingest.formats`) import it, it imports none of them."""

from __future__ import annotations

from pathlib import Path

from syllabus_common.errors import IngestError

EBOOK_KINDS = {".epub": "epub", ".mobi": "mobi", ".fb2": "fb2", ".fbz": "fb2", ".xps": "xps", ".oxps": "xps",
               ".cbz": "cbz"}
TEXT_KINDS = {".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", ".html": "html", ".htm": "html",
              ".xhtml": "html"}
OFFICE_KINDS = {".pptx": "pptx", ".docx": "docx"}


def check_file(path: Path) -> None:
    """The failures every format shares, as one line naming the file."""
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if path.is_dir():
        raise IngestError(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: empty file (0 bytes)")


def document_extensions() -> frozenset[str]:
    """Every extension ingest reads as a document (media files aside)."""
    return frozenset({".pdf", *EBOOK_KINDS, *TEXT_KINDS, *OFFICE_KINDS})


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    for table in (EBOOK_KINDS, TEXT_KINDS, OFFICE_KINDS):
        if suffix in table:
            return table[suffix]
    return "pdf"  # anything else is tried as a PDF, which says clearly when it is not one
