"""What ``summarize`` reads, from whatever the user named: a PDF path, a recording (the knowledge
base's copy when it holds these very bytes, else the transcript cache, else transcribed now), or a
knowledge-base document by path, file name, title or id."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from syllabus_common.errors import KnowledgeBaseError
from pipeline.outline import DocText, from_file, from_kb, from_pdf
from pipeline.progress import Progress


def has_kb(kb_path: Path | None) -> bool:
    return kb_path is not None and (Path(kb_path) / "catalog.sqlite").exists()


def document_for(source: str | Path, cfg, kb_path: Path | None = None, progress: Progress | None = None,
                 notify: Callable[[str], None] | None = None) -> DocText:
    """The text to summarize for ``source``; ``kb_path`` is looked in when it holds a knowledge base."""
    from pipeline.kb import KnowledgeBase

    found_kb = has_kb(kb_path)
    path = Path(source).expanduser()
    if path.is_file():
        from ingest.media import is_media

        if is_media(path):
            return lecture(path, cfg, Path(kb_path) if found_kb else None, progress, notify)
        from syllabus_common.models import user_cache_dir

        return from_file(path, cfg, Path(kb_path) / "cache" if found_kb else user_cache_dir())
    if not found_kb:
        raise KnowledgeBaseError(f"{source}: no such file, and no knowledge base at {kb_path} to look it up in")
    with KnowledgeBase(cfg, kb_path) as kb:
        found = kb.find_document(
            str(source), missing=f"{source}: no such file, and no document in {kb_path} matches; see `syllabus list`")
        return from_kb(kb, found)


def lecture(path: Path, cfg, kb_path: Path | None, progress: Progress | None = None,
            notify: Callable[[str], None] | None = None) -> DocText:
    """A recording: the knowledge base's document when it holds this very file (same bytes), else its
    transcript from the cache, transcribed now if there is none."""
    from syllabus_common.models import user_cache_dir
    from ingest.hashing import sha256_file
    from pipeline.kb import KnowledgeBase
    from pipeline.speech import speech_config

    digest = sha256_file(path)  # once, for the KB lookup, the transcript cache and the summary cache
    if kb_path is not None:
        with KnowledgeBase(cfg, kb_path) as kb:
            same = [d for d in kb.find_documents(str(path)) if d.kind == "media" and d.sha256 == digest]
            if len(same) == 1:
                return from_kb(kb, same[0])
    cache = (kb_path / "cache") if kb_path is not None else user_cache_dir()
    return from_file(path, speech_config(cfg), cache, progress=progress, notify=notify, sha256=digest)
