"""Which reader takes a (non-media) file: by extension, else by its first bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingest.files import kind_of
from ingest.types import ExtractedDocument


def extract_document(path: Path, cfg=None, cache_dir: Path | None = None,
                     on_page: Callable[[int], None] | None = None, strip_headers: bool | None = None) -> ExtractedDocument:
    """Read a document file; pages without a text layer go through OCR as ``cfg.ocr`` says
    (``on_page(1)`` after each page read by OCR; results cached under ``cache_dir/ocr``).
    ``strip_headers``: default ``cfg.chunking.strip_headers``."""
    path = Path(path)
    kind = kind_of(path)
    strip = strip_headers if strip_headers is not None else (cfg.chunking.strip_headers if cfg is not None else True)
    if kind in ("md", "txt"):
        from ingest.markup import extract_markdown

        return extract_markdown(path, kind)
    if kind == "html":
        from ingest.markup import extract_html

        return extract_html(path)
    if kind == "pptx":
        from ingest.office import extract_pptx

        return extract_pptx(path)
    if kind == "docx":
        from ingest.office import extract_docx

        return extract_docx(path)
    from ingest.ocr import page_reader

    ocr = page_reader(cfg, cache_dir, on_page)
    if kind == "pdf":
        from ingest.pdf import extract_pdf

        return extract_pdf(path, strip_headers=strip, ocr=ocr)
    from ingest.ebook import extract_ebook

    return extract_ebook(path, ocr=ocr)
