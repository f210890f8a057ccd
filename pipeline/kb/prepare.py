"""The per-file work of an ingest, apart from the knowledge base: file → document → chunks →
embeddings. Local ingest calls it in the writer's process; ``ingest --ray`` calls it on the cluster's
workers and sends the result back to the one writer, which commits it the same way
(:func:`pipeline.kb.writer.commit`). It reads no catalog and writes nothing but the derived-data
cache (transcripts, OCR)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.types import ExtractedDocument
from pipeline.progress import Progress

TITLE_WORDS = 10  # section-title words prefixed to a chunk for embedding


@dataclass
class PreparedFile:
    """Everything the writer stores for one file, made without the KB."""

    path: str  # absolute
    sha256: str
    size_bytes: int
    doc: ExtractedDocument
    chunks: list  # [pipeline.chunking.Chunk]
    vectors: np.ndarray  # (n_chunks, dim) float32, unit length
    seconds: float | None  # a recording's length (end of its last section); None for a document
    work_seconds: float = 0.0  # wall time spent here (extract + chunk + embed)
    # derived files made where the KB's cache/ was out of reach (a Ray worker on another node):
    # path relative to cache/ → text, for the writer to keep (the transcript, so it is never made twice)
    derived: dict[str, str] = field(default_factory=dict)


def prepare_file(path: Path, sha256: str, cfg, cache_dir: Path, embedder, progress: Progress | None = None,
                 ) -> PreparedFile:
    """Extract (or transcribe), chunk and embed ``path``. ``cfg``: the config with ``asr.model``
    resolved (:func:`pipeline.speech.speech_config`); ``cache_dir``: transcripts and OCR results;
    ``embedder``: loaded once by the caller and reused for every file."""
    import time

    from ingest.document import extract
    from pipeline.chunking import Chunker, check_fits

    started = time.perf_counter()
    progress = progress or Progress()
    path = Path(path)
    doc = extract(path, cfg, cache_dir, on_stage=progress.stage, on_progress=progress.position, sha256=sha256)
    check_fits(cfg.chunking.size, embedder.max_tokens, embedder.special_tokens)
    progress.stage("chunking", None)
    chunks = Chunker(embedder.count_tokens, cfg.chunking.size, cfg.chunking.overlap).chunk(doc.spans)
    progress.stage("embedding", len(chunks))
    vectors = embedder.encode([embed_text(c.section_path, c.text) for c in chunks], progress=progress.advance)
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1)
    seconds = max((s.t_end for s in doc.sections if s.t_end is not None), default=None) if doc.kind == "media" else None
    return PreparedFile(str(path.resolve()), sha256, path.stat().st_size, doc, chunks, vectors, seconds,
                        time.perf_counter() - started)


def embed_text(section_path: tuple[str, ...], text: str) -> str:
    """What the dense model sees: the section title gives a passage its topic.

    The title is cut to a few words so it stays inside the tokens ``check_fits`` reserves for it.
    """
    if not section_path:
        return text
    title = " ".join(section_path[-1].split()[:TITLE_WORDS])
    return f"{title}\n{text}"
