"""Crash safety: SIGKILL an ingest mid-batch; the KB opens, holds only whole documents, and a re-run completes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pdfgen
from conftest import ROOT


def _documents(db_path):
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_mid_ingest_leaves_whole_documents(tmp_path, cfg, embedder):
    from pipeline.kb import KnowledgeBase

    files = [pdfgen.long_book(tmp_path / f"part{i:02d}.pdf", pages=12, seed=i) for i in range(10)]
    kb_dir = tmp_path / "kb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--quiet", "--kb", str(kb_dir), "ingest", *map(str, files)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and _documents(kb_dir / "catalog.sqlite") < 2:
        time.sleep(0.05)
    assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    # Expected chunk counts per file, from a clean ingest of each file into its own KB.
    kb = KnowledgeBase(cfg, kb_dir, embedder=embedder)
    try:
        docs = kb.documents()
        assert 2 <= len(docs) < len(files), "the kill should land mid-batch"
        for d in docs:
            assert d.n_pages == 12
            pages = kb.catalog.db.execute("SELECT COUNT(*) FROM pages WHERE doc_id=?", (d.id,)).fetchone()[0]
            assert pages == 12
        reference = KnowledgeBase(cfg, tmp_path / "ref", embedder=embedder, create=True)
        expected = {o.path: o.chunks for o in reference.ingest([files[0], files[1]])}
        reference.close()
        for d in docs:
            if d.path in expected:
                assert d.n_chunks == expected[d.path]
        # Searching works on what survived (indexes rebuilt if they were stale).
        hits = kb.search("memory tensor gradient", k=3)
        assert hits and {h.doc_id for h in hits} <= {d.id for d in docs}
    finally:
        kb.close()

    rerun = subprocess.run([sys.executable, "-m", "pipeline", "--quiet", "--kb", str(kb_dir), "ingest", *map(str, files), "--json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    kb = KnowledgeBase(cfg, kb_dir, embedder=embedder)
    try:
        assert len(kb.documents()) == len(files)
        assert kb._indexes_current()
        dense, lexical = kb.load_indexes()
        assert dense.index.ntotal == kb.catalog.count_chunks() == len(lexical.ids)
    finally:
        kb.close()
