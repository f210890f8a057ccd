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
    """The document in ``path``. ``cache_dir`` holds reusable derived data (transcripts).

    Audio and video (by extension, else by probing with PyAV) are transcribed, reporting a stage and
    then seconds of audio done through ``on_progress(done, total)``, and loud fallbacks through
    ``notify(message)``; the rest is PDF."""
    from ingest.media import is_media

    if is_media(path):
        from ingest.media_doc import extract_media

        if on_stage is not None:
            on_stage("transcribing (s of audio)", None)
        return extract_media(path, cfg, cache_dir, on_progress=on_progress, notify=notify, sha256=sha256)
    from ingest.pdf import extract_pdf

    return extract_pdf(path, strip_headers=cfg.chunking.strip_headers)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Folders become the PDFs and media files inside them (recursively, sorted); files stay as given."""
    from ingest.media import MEDIA_EXTENSIONS

    wanted = MEDIA_EXTENSIONS | PDF_EXTENSIONS
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in wanted and not f.name.startswith("."))
        else:
            out.append(p)
    return out
