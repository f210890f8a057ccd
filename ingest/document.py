"""File → document: the one entry point that picks the extractor, the content hash, and the
expansion of folders into the files inside them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingest.types import ExtractedDocument

PDF_EXTENSIONS = frozenset({".pdf"})


def extract(path: Path, cfg, cache_dir: Path, on_stage: Callable[[str, int | None], None] | None = None,
            on_progress: Callable[[float, float | None], None] | None = None,
            notify: Callable[[str], None] | None = None, sha256: str | None = None) -> ExtractedDocument:
    """The document in ``path``. ``cache_dir`` holds reusable derived data (transcripts, OCR).

    Audio and video (by extension, else by probing with PyAV) are transcribed, reporting a stage and
    then seconds of audio done through ``on_progress(done, total)``, and loud fallbacks through
    ``notify(message)``; the rest are documents (PDF, e-books, slide decks, notes: see
    :mod:`ingest.formats`), reporting a stage and pages done when pages are read by OCR."""
    from ingest.media import is_media

    if is_media(path):
        from ingest.media_doc import extract_media

        if on_stage is not None:
            on_stage("transcribing (s of audio)", None)
        return extract_media(path, cfg, cache_dir, on_progress=on_progress, notify=notify, sha256=sha256)
    from ingest.formats import extract_document

    done = [0]  # pages read by OCR so far

    def on_page(n: int) -> None:
        if done[0] == 0 and n == 0 and on_stage is not None:
            on_stage("OCR (pages)", None)
        done[0] += n
        if on_progress is not None:
            on_progress(done[0], None)

    return extract_document(path, cfg, cache_dir, on_page=on_page)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Folders become the documents and media files inside them (recursively, sorted); files stay as given."""
    from ingest.files import document_extensions
    from ingest.media import MEDIA_EXTENSIONS

    wanted = MEDIA_EXTENSIONS | document_extensions()
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in wanted and not f.name.startswith("."))
        else:
            out.append(p)
    return out
