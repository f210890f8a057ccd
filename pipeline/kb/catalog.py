"""The SQLite catalog: documents, pages, sections and chunks (with their embeddings).

It is the knowledge base's source of truth. The FAISS and BM25 files are derived from it and carry
the catalog ``generation`` they were built from; a mismatch after a crash means "rebuild them".
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from syllabus_common.sqlitedb import connect, set_up

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,         -- absolute path at ingest time
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,                -- pdf | media
    title TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    language TEXT,
    n_pages INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL,
    embed_model TEXT NOT NULL,
    added_at REAL NOT NULL,            -- unix seconds
    warnings TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pages (
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,           -- physical, 1-based
    label TEXT NOT NULL,
    has_text INTEGER NOT NULL,
    n_chars INTEGER NOT NULL,
    ocr INTEGER NOT NULL DEFAULT 0,    -- the text was read from the page's image
    PRIMARY KEY (doc_id, number)
);
CREATE TABLE IF NOT EXISTS sections (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,              -- outline order
    level INTEGER NOT NULL,
    title TEXT NOT NULL,
    path TEXT NOT NULL,                -- titles joined by ' > '
    page_start INTEGER, page_end INTEGER,
    t_start REAL, t_end REAL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,            -- also the FAISS id
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    section_path TEXT NOT NULL,
    page_start INTEGER, page_end INTEGER,
    t_start REAL, t_end REAL,
    n_tokens INTEGER NOT NULL,
    embedding BLOB NOT NULL,           -- float32, unit length
    kind TEXT,                         -- NULL: the document's own text; 'ocr' | 'slide'
    para_start INTEGER, para_end INTEGER  -- paragraph numbers in formats without pages (docx, md, html, txt)
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ord);
CREATE INDEX IF NOT EXISTS sections_doc ON sections(doc_id, ord);
"""

PATH_SEP = " > "


@dataclass
class DocumentRow:
    id: int
    path: str
    sha256: str
    kind: str
    title: str
    author: str
    language: str | None
    n_pages: int
    size_bytes: int
    embed_model: str
    added_at: float
    warnings: str
    n_chunks: int = 0
    n_sections: int = 0
    n_tokens: int = 0
    n_ocr_pages: int = 0
    n_paras: int = 0  # paragraphs, in formats without pages


@dataclass
class ChunkRow:
    id: int
    doc_id: int
    text: str
    section_path: str
    page_start: int | None
    page_end: int | None
    t_start: float | None
    t_end: float | None
    n_tokens: int
    kind: str | None = None
    para_start: int | None = None
    para_end: int | None = None


class Catalog:
    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.db = connect(uri, uri=True)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys=ON")
        if not readonly:
            set_up(self.db, lambda db: self._set_up())

    def _set_up(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed ingest survives power loss
        self.db.executescript(_SCHEMA)
        self._migrate()
        self._init_meta()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Catalogs written before chunks had a kind or paragraph numbers get the columns (NULL:
        ordinary text, no paragraph numbers: a notes file ingested then is cited by section only)."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(chunks)")}
        if "kind" not in columns:
            self.db.execute("ALTER TABLE chunks ADD COLUMN kind TEXT")
        for column in ("para_start", "para_end"):
            if column not in columns:
                self.db.execute(f"ALTER TABLE chunks ADD COLUMN {column} INTEGER")
        if "ocr" not in {r[1] for r in self.db.execute("PRAGMA table_info(pages)")}:
            self.db.execute("ALTER TABLE pages ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")

    def _init_meta(self) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")

    def transaction(self):
        return _Transaction(self.db)

    # ----- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> int:
        new = self.generation + 1
        self.set_meta("generation", str(new))
        return new

    # ----- documents
    def _document(self, row: sqlite3.Row) -> DocumentRow:
        return DocumentRow(**{k: row[k] for k in row.keys()})

    def documents(self) -> list[DocumentRow]:
        rows = self.db.execute(
            """SELECT d.*,
                  (SELECT COUNT(*) FROM chunks c WHERE c.doc_id=d.id) AS n_chunks,
                  (SELECT COUNT(*) FROM sections s WHERE s.doc_id=d.id) AS n_sections,
                  (SELECT COALESCE(SUM(n_tokens),0) FROM chunks c WHERE c.doc_id=d.id) AS n_tokens,
                  (SELECT COUNT(*) FROM pages p WHERE p.doc_id=d.id AND p.ocr) AS n_ocr_pages,
                  (SELECT COALESCE(MAX(para_end),0) FROM chunks c WHERE c.doc_id=d.id) AS n_paras
               FROM documents d ORDER BY d.added_at, d.id"""
        ).fetchall()
        return [self._document(r) for r in rows]

    def document_by_path(self, path: str) -> DocumentRow | None:
        row = self.db.execute("SELECT * FROM documents WHERE path=?", (path,)).fetchone()
        return self._document(row) if row else None

    def documents_by_sha(self, sha256: str) -> list[DocumentRow]:
        return [self._document(r) for r in self.db.execute("SELECT * FROM documents WHERE sha256=?", (sha256,))]

    def insert_document(self, **fields) -> int:
        fields.setdefault("added_at", time.time())
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        cur = self.db.execute(f"INSERT INTO documents ({cols}) VALUES ({marks})", tuple(fields.values()))
        return int(cur.lastrowid)

    def delete_document(self, doc_id: int) -> None:
        self.db.execute("DELETE FROM documents WHERE id=?", (doc_id,))  # pages, sections, chunks cascade

    def insert_pages(self, doc_id: int, rows: Iterable[tuple]) -> None:
        """Rows of (number, label, has text layer, characters[, read by OCR])."""
        self.db.executemany(
            "INSERT INTO pages (doc_id, number, label, has_text, n_chars, ocr) VALUES (?, ?, ?, ?, ?, ?)",
            [(doc_id, r[0], r[1], int(r[2]), r[3], int(r[4]) if len(r) > 4 else 0) for r in rows],
        )

    def insert_sections(self, doc_id: int, rows: Iterable[dict]) -> None:
        self.db.executemany(
            """INSERT INTO sections (doc_id, ord, level, title, path, page_start, page_end, t_start, t_end)
               VALUES (:doc_id, :ord, :level, :title, :path, :page_start, :page_end, :t_start, :t_end)""",
            [dict(r, doc_id=doc_id) for r in rows],
        )

    def insert_chunks(self, doc_id: int, rows: Iterable[dict]) -> None:
        self.db.executemany(
            """INSERT INTO chunks (doc_id, ord, text, section_path, page_start, page_end, t_start, t_end, n_tokens, embedding, kind,
                                   para_start, para_end)
               VALUES (:doc_id, :ord, :text, :section_path, :page_start, :page_end, :t_start, :t_end, :n_tokens, :embedding, :kind,
                       :para_start, :para_end)""",
            [dict(r, doc_id=doc_id, kind=r.get("kind")) for r in rows],
        )

    # ----- reads
    def page_labels(self, doc_id: int) -> dict[int, str]:
        return {r[0]: r[1] for r in self.db.execute("SELECT number, label FROM pages WHERE doc_id=?", (doc_id,))}

    def sections(self, doc_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM sections WHERE doc_id=? ORDER BY ord", (doc_id,)).fetchall()

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" for _ in part)
            for r in self.db.execute(
                f"SELECT id, doc_id, text, section_path, page_start, page_end, t_start, t_end, n_tokens, kind, para_start, para_end FROM chunks WHERE id IN ({marks})",
                part,
            ):
                out[r["id"]] = ChunkRow(**{k: r[k] for k in r.keys()})
        return out

    def document_chunks(self, doc_id: int) -> list[ChunkRow]:
        """A document's chunks in reading order."""
        rows = self.db.execute(
            "SELECT id, doc_id, text, section_path, page_start, page_end, t_start, t_end, n_tokens, kind, para_start, para_end FROM chunks "
            "WHERE doc_id=? ORDER BY ord", (doc_id,))
        return [ChunkRow(**{k: r[k] for k in r.keys()}) for r in rows]

    def embeddings(self, ids: list[int]) -> dict[int, bytes]:
        """Stored float32 embeddings of these chunks (raw bytes), by chunk id."""
        marks = ",".join("?" for _ in ids)
        return dict(self.db.execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", ids).fetchall())

    def chunk_ids_for_docs(self, doc_ids: list[int]) -> np.ndarray:
        marks = ",".join("?" for _ in doc_ids)
        rows = self.db.execute(f"SELECT id FROM chunks WHERE doc_id IN ({marks})", doc_ids).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_index_rows(self) -> Iterator[tuple[int, str, bytes]]:
        """(chunk id, text for BM25, embedding bytes) in id order, for rebuilding the indexes.

        The BM25 text starts with the chunk's whole section path (chapter, section, subsection), so
        a question that names a chapter's subject finds the chapter's passages."""
        cur = self.db.execute("SELECT id, section_path, text, embedding FROM chunks ORDER BY id")
        for r in cur:
            yield r[0], (r[1].replace(PATH_SEP, "\n") + "\n" + r[2]) if r[1] else r[2], r[3]

    def count_chunks(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception (one ingest = one transaction)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False
