"""Opening a WAL SQLite file that other threads or processes may be opening at the same moment.

Two connections that set up one new file at once (``PRAGMA journal_mode=WAL``, ``CREATE TABLE IF NOT
EXISTS``) can get ``database is locked`` at once, without the busy timeout being waited: switching
the journal mode needs the file to itself, and a connection that holds a read lock while asking for
the write lock is refused immediately rather than left to deadlock. Set-up steps are idempotent, so
the remedy is to run them again after a short pause, until the same 30 s the busy timeout allows.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

TIMEOUT = 30.0


def connect(target: str, uri: bool = False, timeout: float = TIMEOUT) -> sqlite3.Connection:
    """A connection in autocommit mode (explicit transactions), usable from any thread."""
    return sqlite3.connect(target, uri=uri, timeout=timeout, isolation_level=None, check_same_thread=False)


def is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def set_up(db: sqlite3.Connection, steps: Callable[[sqlite3.Connection], None], timeout: float = TIMEOUT) -> None:
    """Run the idempotent ``steps(db)`` (journal mode, schema, migrations), again after a pause while
    another connection holds the file, for up to ``timeout`` seconds; then the error is raised."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            steps(db)
            return
        except sqlite3.OperationalError as error:
            if not is_busy(error) or time.monotonic() + pause > deadline:
                raise
            if db.in_transaction:
                db.execute("ROLLBACK")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
