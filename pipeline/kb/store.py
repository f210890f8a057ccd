"""The knowledge base directory: ingest, remove, search.

Layout (``--kb DIR``)::

    catalog.sqlite   documents, pages, sections, chunks + embeddings (WAL; one transaction per file)
    dense.faiss      FAISS index (+ dense.json: generation, kind); ids are chunk ids
    bm25/            bm25s arrays (.npy, allow_pickle=False) + JSON vocabulary
    cache/           derived files, safe to delete
    .lock            held by the one writer

Crash safety: a file's chunks land in SQLite in one transaction that also bumps ``generation``;
the index files are rebuilt from SQLite afterwards, written to temporary names and renamed. An index
whose generation differs from the catalog's (a crash between the two) is rebuilt on the next open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ingest.types import Section, Span
from pipeline.config import Config
from pipeline.kb.catalog import PATH_SEP, Catalog, DocumentRow
from pipeline.kb.types import IngestOutcome
from pipeline.progress import Progress
from syllabus_common.atomic import atomic_dir, atomic_path, atomic_write_text, recover_dir, sweep_leftovers
from syllabus_common.errors import ConfigError, KnowledgeBaseError, SyllabusError
from syllabus_common.places import locate

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
LOCK = ".lock"


@dataclass
class Hit:
    chunk_id: int
    doc_id: int
    title: str
    path: str
    kind: str
    section: str
    page_start: int | None
    page_end: int | None
    page_label: str | None  # printed label of page_start ("12", "iv")
    page_label_end: str | None
    t_start: float | None
    t_end: float | None
    score: float
    dense_rank: int | None
    bm25_rank: int | None
    text: str
    chunk_kind: str | None = None  # None: the document's own text; "ocr" (a page read by OCR); "slide"
    para_start: int | None = None  # paragraph numbers, in formats without pages (docx, md, html, txt)
    para_end: int | None = None
    rerank_score: float | None = None  # the re-ranker's score (``score`` stays the fused one)
    dense_score: float | None = None  # cosine similarity, when the dense retriever found it
    bm25_score: float | None = None  # BM25 score, when the lexical retriever found it
    doc_score: float | None = None  # cosine of the question to the document's mean passage

    @property
    def where(self) -> str:
        """The place in the words of the document's format: ``p. 12``, ``slide 3``, ``loc. 40``, ``¶ 7–9``, ``12:30–14:05``."""
        return locate(self.kind, self.page_start, self.page_end, self.page_label, self.page_label_end, self.t_start,
                      self.t_end, self.chunk_kind, self.para_start, self.para_end)

    def as_dict(self) -> dict:
        return dict(self.__dict__, where=self.where)


class KnowledgeBase:
    """A knowledge-base directory: ``ingest`` files, ``search`` them (hybrid dense + BM25), list and
    ``remove`` documents. Open it as a context manager; one writer at a time, readers any time."""

    def __init__(self, cfg: Config, path: Path | None = None, embedder=None, create: bool = False):
        self.cfg = cfg
        self.path = Path(path) if path is not None else cfg.kb.path
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} is a file, not a knowledge-base directory; choose another --kb")
        if not (self.path / CATALOG).exists():
            if not create:
                raise KnowledgeBaseError(f"no knowledge base at {self.path}; add documents with `syllabus ingest FILE`")
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise KnowledgeBaseError(f"cannot create the knowledge base at {self.path}: {exc.strerror}") from None
        try:
            self.catalog = Catalog(self.path / CATALOG)
        except Exception as exc:  # sqlite3.DatabaseError: not a database, locked, ...
            raise KnowledgeBaseError(f"cannot open {self.path / CATALOG}: {exc}") from None
        self._embedder = embedder
        self._embed_model_name: str | None = None
        self._dense = None
        self._lexical = None
        self._tidy_if_idle()

    # ----- plumbing
    @property
    def embedder(self):
        if self._embedder is None:
            from pipeline.onnx_embed import embedder_for

            self._embedder = embedder_for(self.cfg)
        return self._embedder

    def writer_lock(self, timeout: float = 10.0):
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise KnowledgeBaseError(f"{self.path} is being written by another syllabus process; try again when it finishes") from None
        self._tidy()
        return lock

    def _tidy(self) -> None:
        """Remove leftovers of an index write that was killed (writer lock held)."""
        removed = sweep_leftovers(self.path, [DENSE, "dense.json", BM25_DIR])
        if removed:
            log.info("%s: removed leftovers of an interrupted index write: %s", self.path, ", ".join(sorted(removed)))

    def _tidy_if_idle(self) -> None:
        """On open, tidy when no writer is at work (a reader never waits for the lock)."""
        if not any(self.path.glob(".*.tmp")) and not (self.path / f"{BM25_DIR}.old").exists():
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return
        try:
            self._tidy()
        finally:
            lock.release()

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def embed_model_name(self) -> str:
        """The embedding model in use (``auto`` resolved by the planner)."""
        if self._embed_model_name is None:
            from pipeline.embed import embedding_model_name

            self._embed_model_name = self._embedder.name if self._embedder is not None else embedding_model_name(self.cfg)
        return self._embed_model_name

    def _check_embed_model(self) -> None:
        stored = self.catalog.get_meta("embed_model")
        if stored is not None and stored != self.embed_model_name and self.catalog.count_chunks():
            raise KnowledgeBaseError(
                f"{self.path} was built with embedding model {stored!r} but the config says "
                f"{self.embed_model_name!r}; use the same model or a new --kb directory"
            )

    # ----- ingest
    def ingest(self, paths: Iterable[str | Path], progress: Progress | None = None,
               ray: str | None = None) -> list[IngestOutcome]:
        """Add or update files (see :func:`pipeline.kb.writer.ingest_files`); unchanged ones are skipped.
        ``ray``: do the files' work on the Ray cluster at this address (``local``: a Ray instance on
        this machine); this process still commits every document (see :mod:`pipeline.scaleout`)."""
        from pipeline.kb.writer import ingest_files

        runner = None
        if ray is not None:
            from pipeline.scaleout.work import ingest_runner

            runner = ingest_runner(ray)
        return ingest_files(self, list(paths), progress or Progress(), runner)

    # ----- remove
    def find_documents(self, ref: str) -> list[DocumentRow]:
        """Documents matching a path (as given or absolute), a file name, a title or an id."""
        docs = self.catalog.documents()
        candidates = [str(Path(ref).expanduser().resolve()) if ref else ref, ref]
        exact = [d for d in docs if d.path in candidates or str(d.id) == ref]
        if exact:
            return exact
        return [d for d in docs if Path(d.path).name == ref or d.title == ref]

    def find_document(self, ref: str, missing: str | None = None) -> DocumentRow:
        """The one document ``ref`` names; a clear error when none or several match."""
        matches = self.find_documents(ref)
        if not matches:
            raise KnowledgeBaseError(missing or f"no document matches {ref!r}; see `syllabus list`")
        if len(matches) > 1:
            listed = ", ".join(f"#{d.id} {d.path}" for d in matches)
            raise KnowledgeBaseError(f"{ref!r} matches {len(matches)} documents ({listed}); give the path or id")
        return matches[0]

    def remove(self, ref: str) -> DocumentRow:
        lock = self.writer_lock()
        try:
            doc = self.find_document(ref)
            with self.catalog.transaction():
                self.catalog.delete_document(doc.id)
                self.catalog.bump_generation()
            self.rebuild_indexes()
            return doc
        finally:
            lock.release()

    # ----- indexes
    def _index_generations(self) -> tuple[int | None, int | None]:
        from pipeline.kb.lexical import LexicalIndex

        recover_dir(self.path / BM25_DIR)
        dense_meta = self.path / "dense.json"
        try:
            import json

            dense_gen = int(json.loads(dense_meta.read_text())["generation"]) if (self.path / DENSE).exists() else None
        except (OSError, ValueError, KeyError):
            dense_gen = None
        return dense_gen, LexicalIndex.generation_of(self.path / BM25_DIR)

    def _indexes_current(self) -> bool:
        gen = self.catalog.generation
        return self._index_generations() == (gen, gen)

    def _build_indexes(self):
        from pipeline.kb.dense import DenseIndex
        from pipeline.kb.lexical import LexicalIndex

        gen = self.catalog.generation
        ids, texts, blobs = [], [], []
        for cid, text, blob in self.catalog.iter_index_rows():
            ids.append(cid)
            texts.append(text)
            blobs.append(blob)
        dim = len(blobs[0]) // 4 if blobs else 384
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim) if blobs else np.zeros((0, dim), np.float32)
        kb = self.cfg.kb
        dense = DenseIndex.build(np.asarray(ids, np.int64), vectors, dim, gen, kb.hnsw_threshold, kb.hnsw_m, kb.hnsw_ef_search)
        lexical = LexicalIndex.build(ids, texts, self.cfg.retrieval.stemmer, gen)
        return dense, lexical

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from the catalog and replace the files atomically (writer only)."""
        import json

        dense, lexical = self._build_indexes()
        with atomic_path(self.path / DENSE) as tmp:
            dense.save(tmp)
        atomic_write_text(self.path / "dense.json", json.dumps({"generation": dense.generation, "kind": dense.kind}))
        with atomic_dir(self.path / BM25_DIR) as tmp:
            lexical.save(tmp)
        self._dense, self._lexical = dense, lexical

    def load_indexes(self):
        if self._dense is not None:
            return self._dense, self._lexical
        from pipeline.kb.dense import DenseIndex
        from pipeline.kb.lexical import LexicalIndex

        if self._indexes_current():
            try:
                self._dense = DenseIndex.load(self.path / DENSE, self.cfg.kb.hnsw_ef_search)
                self._lexical = LexicalIndex.load(self.path / BM25_DIR)
                return self._dense, self._lexical
            except Exception as exc:  # damaged files: the catalog can always rebuild them
                log.warning("index files unreadable (%s); rebuilding from the catalog", exc)
        # Stale or damaged: rebuild. Save only when no writer is busy; otherwise keep them in memory.
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            with lock:
                self.rebuild_indexes()
        except Timeout:
            self._dense, self._lexical = self._build_indexes()
        return self._dense, self._lexical

    # ----- search
    def search(self, query: str, k: int | None = None, fusion: str | None = None,
               docs: list[str] | None = None, rerank: str | None = None, query_vector=None,
               lexical_query: str | None = None, expand: str | None = None) -> list[Hit]:
        """Scoped, fused, re-ranked search; see :mod:`pipeline.kb.search`. ``query_vector``: the
        query's embedding when the caller has it already (see :meth:`embed_query`);
        ``lexical_query``: what BM25 matches instead of the query; ``expand``: a query expander
        (default: ``retrieval.expand.method``)."""
        from pipeline.kb.search import search

        return search(self, query, k, fusion, docs, rerank, query_vector, lexical_query, expand)

    def _hits(self, ids: list[int], scores, dense_rank, bm25_rank) -> list[Hit]:
        """:class:`Hit` objects for chunk ``ids`` in that order (chunks removed since the index loaded
        are skipped), with document, section, page labels and text from the catalog."""
        rows = self.catalog.chunks(ids)
        docs = {d.id: d for d in self.catalog.documents()}
        labels: dict[int, dict[int, str]] = {}
        hits = []
        for cid in ids:
            c = rows.get(cid)
            if c is None:
                continue  # removed since the index was loaded
            d = docs[c.doc_id]
            if d.id not in labels:
                labels[d.id] = self.catalog.page_labels(d.id)
            lab = labels[d.id]
            hits.append(Hit(
                chunk_id=cid, doc_id=d.id, title=d.title, path=d.path, kind=d.kind, section=c.section_path,
                page_start=c.page_start, page_end=c.page_end,
                page_label=lab.get(c.page_start) if c.page_start else None,
                page_label_end=lab.get(c.page_end) if c.page_end else None,
                t_start=c.t_start, t_end=c.t_end, score=float(scores[cid]),
                dense_rank=dense_rank.get(cid), bm25_rank=bm25_rank.get(cid), text=c.text, chunk_kind=c.kind,
                para_start=c.para_start, para_end=c.para_end,
            ))
        return hits

    def documents(self) -> list[DocumentRow]:
        return self.catalog.documents()

    # ----- stored text
    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit-length embedding, (dim,) float32."""
        return np.asarray(self.embedder.encode_query(query), dtype=np.float32).ravel()

    def similarities(self, query_vector: np.ndarray, chunk_ids: list[int]) -> list[float]:
        """Cosine of the query and each stored chunk (embeddings are unit length: a dot product)."""
        if not chunk_ids:
            return []
        stored = self.catalog.embeddings(list(chunk_ids))
        return [float(np.frombuffer(stored[c], dtype=np.float32) @ query_vector) if stored.get(c) else 0.0
                for c in chunk_ids]

    def stored_text(self, doc_id: int) -> tuple[list[Span], list[Section]]:
        """A document as it was stored: its chunks as spans in reading order (overlaps included) and
        its outline, for when the file itself is gone or changed."""
        def path_of(text: str | None) -> tuple[str, ...]:
            return tuple(p for p in text.split(PATH_SEP) if p) if text else ()

        spans = [Span(text=c.text, section_path=path_of(c.section_path), page=c.page_start, t_start=c.t_start,
                      t_end=c.t_end, kind=c.kind, para=c.para_start) for c in self.catalog.document_chunks(doc_id)]
        sections = [Section(title=s["title"], level=s["level"], path=path_of(s["path"]), page_start=s["page_start"],
                            page_end=s["page_end"], t_start=s["t_start"], t_end=s["t_end"])
                    for s in self.catalog.sections(doc_id)]
        return spans, sections

    def disk_usage(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
