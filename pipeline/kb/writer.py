"""The writer side of the knowledge base: files in, each extracted by ingest/ (which knows nothing of
the KB), chunked, embedded and stored in one transaction, then both indexes rebuilt once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ingest.hashing import sha256_file
from pipeline.kb.catalog import PATH_SEP
from pipeline.kb.types import IngestOutcome
from pipeline.progress import Progress
from syllabus_common.errors import ConfigError, IngestError, KnowledgeBaseError, ModelNotAvailable, SyllabusError

log = logging.getLogger(__name__)

TITLE_WORDS = 10  # section-title words prefixed to a chunk for embedding


def ingest_files(kb, paths: list, progress: Progress) -> list[IngestOutcome]:
    """Add or update ``paths`` in ``kb`` under its writer lock, one transaction per file, then rebuild
    the indexes once; a bad file is reported in its outcome and the batch goes on."""
    outcomes: list[IngestOutcome] = []
    _preflight(kb, paths)
    lock = kb.writer_lock()
    try:
        kb._check_embed_model()
        changed = False
        for i, raw in enumerate(paths):
            progress.file_started(str(raw), i, len(paths))
            try:
                outcome = _ingest_one(kb, Path(raw), progress)
            except IngestError as exc:
                outcome = IngestOutcome(str(raw), "failed", str(exc))
            except (ConfigError, KnowledgeBaseError):
                raise  # every file would fail the same way, or the KB itself is in trouble
            except SyllabusError as exc:  # a model or decoder failing on this file: the batch goes on
                outcome = IngestOutcome(str(raw), "failed", f"{raw}: {exc}")
            except Exception as exc:  # a library failing on one odd file must not stop the batch
                log.debug("ingest of %s failed", raw, exc_info=True)
                outcome = IngestOutcome(str(raw), "failed", f"{raw}: {type(exc).__name__}: {exc}")
            changed |= outcome.status in ("added", "replaced")
            outcomes.append(outcome)
            progress.file_done(outcome)
        if changed or not kb._indexes_current():
            progress.stage("indexing", None)
            kb.rebuild_indexes()
    finally:
        lock.release()
    return outcomes


def _preflight(kb, paths: list) -> None:
    """What every file of the batch depends on is checked before the first one: a wrong
    ``asr.model`` is a configuration error (exit 2), not a failure of each recording."""
    from ingest.media import MEDIA_EXTENSIONS

    if not any(Path(p).suffix.lower() in MEDIA_EXTENSIONS for p in paths):
        return
    from ingest.asr import check_model, options_from_config
    from pipeline.speech import speech_config

    cfg = speech_config(kb.cfg)  # asr.model: auto → the planner's choice
    try:
        name, model_options, _ = options_from_config(cfg.asr, offline=cfg.offline, cache_dir=kb.path / "cache")
        check_model(name, model_options)
    except ModelNotAvailable as exc:
        raise ConfigError(f"asr.model: {exc}") from None


def _ingest_one(kb, path: Path, progress: Progress) -> IngestOutcome:
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if path.is_dir():
        raise IngestError(f"{path}: is a directory (give files, e.g. {path}/*.pdf)")
    abspath = str(path.resolve())
    sha = sha256_file(path)
    existing = kb.catalog.document_by_path(abspath)
    if existing is not None and existing.sha256 == sha:
        return IngestOutcome(abspath, "unchanged", "unchanged", existing.id)
    twins = [d for d in kb.catalog.documents_by_sha(sha) if d.path != abspath]
    if twins and existing is None:
        return IngestOutcome(abspath, "duplicate", f"same content as {twins[0].path}", twins[0].id)

    from ingest.document import extract
    from ingest.media import is_media
    from pipeline.chunking import Chunker, check_fits
    from pipeline.speech import speech_config

    cfg = speech_config(kb.cfg) if is_media(path) else kb.cfg  # asr.model: auto → the planner's choice
    doc = extract(path, cfg, kb.path / "cache", on_stage=progress.stage, on_progress=progress.position, sha256=sha)

    emb = kb.embedder
    check_fits(kb.cfg.chunking.size, emb.max_tokens, emb.special_tokens)
    progress.stage("chunking", None)
    chunker = Chunker(emb.count_tokens, kb.cfg.chunking.size, kb.cfg.chunking.overlap)
    chunks = chunker.chunk(doc.spans)
    progress.stage("embedding", len(chunks))
    vectors = emb.encode([_embed_text(c.section_path, c.text) for c in chunks], progress=progress.advance)

    with kb.catalog.transaction():
        if existing is not None:
            kb.catalog.delete_document(existing.id)
        doc_id = kb.catalog.insert_document(
            path=abspath, sha256=sha, kind=doc.kind, title=doc.title, author=doc.author,
            n_pages=len(doc.pages), size_bytes=path.stat().st_size, embed_model=kb.embed_model_name,
            language=doc.language,
            warnings="\n".join(doc.warnings),
        )
        kb.catalog.insert_pages(doc_id, [(p.number, p.label, p.has_text_layer, len(p.text), p.ocr) for p in doc.pages])
        kb.catalog.insert_sections(doc_id, [
            dict(ord=i, level=s.level, title=s.title, path=PATH_SEP.join(s.path), page_start=s.page_start,
                 page_end=s.page_end, t_start=s.t_start, t_end=s.t_end)
            for i, s in enumerate(doc.sections)
        ])
        kb.catalog.insert_chunks(doc_id, [
            dict(ord=i, text=c.text, section_path=PATH_SEP.join(c.section_path), page_start=c.page_start,
                 page_end=c.page_end, t_start=c.t_start, t_end=c.t_end, n_tokens=c.n_tokens,
                 embedding=vectors[i].astype(np.float32).tobytes(), kind=c.kind, para_start=c.para_start,
                 para_end=c.para_end)
            for i, c in enumerate(chunks)
        ])
        kb.catalog.set_meta("embed_model", kb.embed_model_name)
        kb.catalog.bump_generation()
    status = "replaced" if existing is not None else "added"
    seconds = max((s.t_end for s in doc.sections if s.t_end is not None), default=None) if doc.kind == "media" else None
    return IngestOutcome(abspath, status, status, doc_id, len(doc.pages), len(chunks), doc.warnings, seconds)


def _embed_text(section_path: tuple[str, ...], text: str) -> str:
    """What the dense model sees: the section title gives a passage its topic.

    The title is cut to a few words so it stays inside the tokens ``check_fits`` reserves for it.
    """
    if not section_path:
        return text
    title = " ".join(section_path[-1].split()[:TITLE_WORDS])
    return f"{title}\n{text}"
