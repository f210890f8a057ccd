"""Per-call results of the summarizer, kept so an interrupted run resumes and a re-run is instant.

One SQLite file, ``cache/summaries.sqlite`` in the knowledge base (or the user cache for a PDF given
without a KB). Each model call's result is committed as soon as it returns (WAL, one transaction per
row), so killing the process loses at most the call in flight. The key hashes everything the output
depends on — model, precision, decoding options and the exact messages (template and text) — so a
changed prompt, chunk or model never reuses a stale summary. Safe to delete.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from syllabus_common.sqlitedb import connect, set_up

FILE = "summaries.sqlite"


def cache_key(model_id: dict, options: dict, messages: list[dict]) -> str:
    blob = json.dumps({"model": model_id, "options": options, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _schema(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a lost last row after power loss is just recomputed
    db.execute(
        """CREATE TABLE IF NOT EXISTS summaries (
               key TEXT PRIMARY KEY,
               kind TEXT NOT NULL,        -- map | reduce | book
               text TEXT NOT NULL,
               document TEXT NOT NULL,    -- content hash of the source document
               seconds REAL NOT NULL,     -- how long the model call took
               created REAL NOT NULL      -- unix seconds
           )"""
    )


class SummaryCache:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE
        self.db = connect(str(self.path))
        set_up(self.db, _schema)

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT text FROM summaries WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, kind: str, text: str, document: str, seconds: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO summaries (key, kind, text, document, seconds, created) VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, text, document, seconds, time.time()),
        )

    def count(self, document: str | None = None) -> int:
        if document is None:
            return int(self.db.execute("SELECT COUNT(*) FROM summaries").fetchone()[0])
        return int(self.db.execute("SELECT COUNT(*) FROM summaries WHERE document=?", (document,)).fetchone()[0])

    def close(self) -> None:
        self.db.close()
