"""The writer side of the knowledge base: files in, each extracted by ingest/ (which knows nothing of
the KB), chunked and embedded (:func:`pipeline.kb.prepare.prepare_file`), stored in one transaction,
then both indexes rebuilt once. The per-file work runs here, or on a Ray cluster
(:mod:`pipeline.scaleout`) whose results this same writer commits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ingest.hashing import sha256_file
from pipeline.kb.catalog import PATH_SEP
from pipeline.kb.prepare import PreparedFile, prepare_file
from pipeline.kb.types import IngestOutcome
from pipeline.progress import Progress
from syllabus_common.errors import ConfigError, IngestError, KnowledgeBaseError, ModelNotAvailable, SyllabusError

log = logging.getLogger(__name__)


def ingest_files(kb, paths: list, progress: Progress, runner: Callable | None = None) -> list[IngestOutcome]:
    """Add or update ``paths`` in ``kb`` under its writer lock, one transaction per file, then rebuild
    the indexes once; a bad file is reported in its outcome and the batch goes on. ``runner(kb, paths,
    progress)``: who does the per-file work (default: this process, file after file)."""
    _preflight(kb, paths)
    lock = kb.writer_lock()
    try:
        kb._check_embed_model()
        outcomes = (runner or _run_here)(kb, paths, progress)
        changed = any(o.status in ("added", "replaced") for o in outcomes)
        if changed or not kb._indexes_current():
            progress.stage("indexing", None)
            kb.rebuild_indexes()
    finally:
        lock.release()
    return outcomes


def _run_here(kb, paths: list, progress: Progress) -> list[IngestOutcome]:
    outcomes = []
    for i, raw in enumerate(paths):
        progress.file_started(str(raw), i, len(paths))
        try:
            outcome = _ingest_one(kb, Path(raw), progress)
        except Exception as exc:
            outcome = failure(raw, exc)
        outcomes.append(outcome)
        progress.file_done(outcome)
    return outcomes


def failure(raw, exc: BaseException) -> IngestOutcome:
    """The outcome of a file whose work raised ``exc``; errors that every file would meet the same
    way (configuration) or that concern the KB itself are raised again: the batch stops."""
    if isinstance(exc, IngestError):
        return IngestOutcome(str(raw), "failed", str(exc))
    if isinstance(exc, (ConfigError, KnowledgeBaseError)):
        raise exc
    if isinstance(exc, SyllabusError):  # a model or decoder failing on this file: the batch goes on
        return IngestOutcome(str(raw), "failed", f"{raw}: {exc}")
    log.debug("ingest of %s failed", raw, exc_info=exc)  # a library failing on one odd file must not stop the batch
    return IngestOutcome(str(raw), "failed", f"{raw}: {type(exc).__name__}: {exc}")


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


def file_config(cfg, path: Path):
    """The config a file's work runs with: a recording's ``asr.model: auto`` resolved by the planner."""
    from ingest.media import is_media
    from pipeline.speech import speech_config

    return speech_config(cfg) if is_media(path) else cfg


def triage(kb, path: Path) -> tuple[str, str, IngestOutcome | None, object]:
    """(absolute path, sha256, the outcome when there is nothing to do, the stored document it replaces)."""
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if path.is_dir():
        raise IngestError(f"{path}: is a directory (give files, e.g. {path}/*.pdf)")
    abspath = str(path.resolve())
    sha = sha256_file(path)
    skip, existing = known(kb, abspath, sha)
    return abspath, sha, skip, existing


def known(kb, abspath: str, sha: str) -> tuple[IngestOutcome | None, object]:
    """Dedup by hash: (outcome "unchanged" or "duplicate" when the KB holds these bytes already, the
    document at this path that new bytes replace)."""
    existing = kb.catalog.document_by_path(abspath)
    if existing is not None and existing.sha256 == sha:
        return IngestOutcome(abspath, "unchanged", "unchanged", existing.id), existing
    twins = [d for d in kb.catalog.documents_by_sha(sha) if d.path != abspath]
    if twins and existing is None:
        return IngestOutcome(abspath, "duplicate", f"same content as {twins[0].path}", twins[0].id), existing
    return None, existing


def _ingest_one(kb, path: Path, progress: Progress) -> IngestOutcome:
    abspath, sha, skip, existing = triage(kb, path)
    if skip is not None:
        return skip
    prepared = prepare_file(path, sha, file_config(kb.cfg, path), kb.path / "cache", kb.embedder, progress)
    return commit(kb, prepared, existing)


def commit(kb, prepared: PreparedFile, existing) -> IngestOutcome:
    """Store one prepared file in one transaction (replacing ``existing``, the document at its path)."""
    doc, chunks, vectors = prepared.doc, prepared.chunks, prepared.vectors
    with kb.catalog.transaction():
        if existing is not None:
            kb.catalog.delete_document(existing.id)
        doc_id = kb.catalog.insert_document(
            path=prepared.path, sha256=prepared.sha256, kind=doc.kind, title=doc.title, author=doc.author,
            n_pages=len(doc.pages), size_bytes=prepared.size_bytes, embed_model=kb.embed_model_name,
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
    return IngestOutcome(prepared.path, status, status, doc_id, len(doc.pages), len(chunks), doc.warnings,
                         prepared.seconds, round(prepared.work_seconds, 3))
