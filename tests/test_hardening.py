"""Hostile inputs and configurations: the error contract as a table, batch isolation, and KB
hygiene after a writer is killed at each temporary-file stage of an index write.

The contract: one line on stderr (never wrapped, whatever the terminal), naming the file or key;
exit 2 for usage and configuration, 1 for per-file failures, 3 for the environment (a busy port,
tested in test_serve_hardening.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

import pdfgen
from conftest import ROOT, run_cli


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return path


def _case(tmp_path: Path, name: str):
    """(CLI arguments, expected exit code, text the one error line must hold)."""
    if name == "config not utf-8":
        bad = tmp_path / "latin1.yaml"
        bad.write_bytes("kb:\n  dir: caf\xe9\n".encode("latin-1"))
        return ["--config", str(bad), "list"], 2, ["latin1.yaml", "UTF-8"]
    if name == "config unknown key":
        bad = tmp_path / "typo.yaml"
        bad.write_text("retrieval:\n  kk: 3\n")
        return ["--config", str(bad), "list"], 2, ["typo.yaml", "retrieval.kk"]
    if name == "kb is a file":
        (tmp_path / "afile").write_text("x")
        return ["--kb", str(tmp_path / "afile"), "list"], 2, ["afile", "is a file"]
    if name == "llm path missing":
        bad = tmp_path / "llm.yaml"
        bad.write_text("llm:\n  model: /nowhere/model.gguf\n")
        return ["--config", str(bad), "--kb", str(tmp_path / "kb"), "serve", "--port", "0"], 2, ["/nowhere/model.gguf"]
    if name == "asr model missing, batch not started":
        bad = tmp_path / "asr.yaml"
        bad.write_text("asr:\n  model: /nowhere/whisper\n")
        book = pdfgen.topic_book(tmp_path / "book.pdf")
        clip = _silence(tmp_path / "clip.wav", 1.0)
        return ["--config", str(bad), "--kb", str(tmp_path / "kb"), "ingest", str(clip), str(book)], 2, ["asr.model", "/nowhere/whisper"]
    if name == "long missing path is not wrapped":
        deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "missing-book.pdf"
        return ["--kb", str(tmp_path / "kb"), "ingest", str(deep)], 1, [str(deep)]
    if name == "half-second clip":
        clip = _silence(tmp_path / "half.wav", 0.5)
        env_cfg = tmp_path / "tiny.yaml"
        env_cfg.write_text("asr:\n  model: tiny.en\n  language: en\n")
        return ["--config", str(env_cfg), "--kb", str(tmp_path / "kb"), "ingest", str(clip)], 1, ["half.wav", "0.5 s of audio"]
    raise AssertionError(name)


CASES = ["config not utf-8", "config unknown key", "kb is a file", "llm path missing",
         "asr model missing, batch not started", "long missing path is not wrapped", "half-second clip"]


@pytest.mark.parametrize("name", CASES)
def test_error_contract(tmp_path, name):
    args, code, needles = _case(tmp_path, name)
    result = run_cli(*args, env={"COLUMNS": "60"})  # a narrow terminal must not wrap the line either
    assert result.returncode == code, (result.returncode, result.stderr[-800:])
    stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith(("1 failed", "0 added")))
    line = _one_line(stderr)
    for needle in needles:
        assert needle in line, line
    if name.startswith("asr model missing"):  # refused before the first file: the PDF is not in
        catalog = tmp_path / "kb" / "catalog.sqlite"
        if catalog.exists():
            import sqlite3

            with sqlite3.connect(catalog) as db:
                assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 0


def test_one_bad_recording_does_not_stop_the_batch(tmp_path):
    first, last = pdfgen.topic_book(tmp_path / "first.pdf"), pdfgen.long_book(tmp_path / "last.pdf", pages=3)
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(os.urandom(4096))
    result = run_cli("--kb", str(tmp_path / "kb"), "ingest", str(first), str(broken), str(last), "--json")
    assert result.returncode == 1, result.stderr[-800:]
    import json

    outcomes = {Path(o["path"]).name: o for o in json.loads(result.stdout)["outcomes"]}
    assert outcomes["first.pdf"]["status"] == outcomes["last.pdf"]["status"] == "added"
    assert outcomes["broken.m4a"]["status"] == "failed" and "broken.m4a" in outcomes["broken.m4a"]["message"]


def test_damaged_pdf_is_diagnosed_as_damaged_and_what_is_readable_is_indexed(tmp_path):
    from ingest.pdf import extract_pdf
    from syllabus_common.errors import IngestError

    whole = pdfgen.long_book(tmp_path / "whole.pdf", pages=12)
    data = whole.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    try:
        doc = extract_pdf(cut)
    except IngestError as exc:
        message = str(exc)
    else:
        message = "; ".join(doc.warnings)
        assert 0 < sum(1 for p in doc.pages if p.text) < 12
    assert "damaged or truncated PDF (repaired;" in message and "OCR" not in message


STAGES = [("dense.faiss.tmp", ".dense.faiss."), ("dense.json.tmp", ".dense.json."), ("bm25.tmp", ".bm25."),
          ("bm25.old", "bm25.old")]


@pytest.fixture(scope="module")
def one_book_kb(tmp_path_factory, cfg, embedder):
    from pipeline.kb import KnowledgeBase

    folder = tmp_path_factory.mktemp("hygiene")
    with KnowledgeBase(cfg, folder / "kb", embedder=embedder, create=True) as kb:
        kb.ingest([pdfgen.topic_book(folder / "a.pdf")])
    return folder / "kb"


@pytest.mark.parametrize("stage,leftover", STAGES)
def test_kill_at_each_temp_stage_leaves_nothing_after_next_open(tmp_path, one_book_kb, cfg, embedder, stage, leftover):
    import shutil

    from pipeline.kb import KnowledgeBase

    kb = tmp_path / "kb"
    shutil.copytree(one_book_kb, kb)
    second = pdfgen.long_book(tmp_path / "b.pdf", pages=3)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--quiet", "--kb", str(kb), "ingest", str(second)],
                            cwd=ROOT, env=dict(os.environ, SYLLABUS_FAULT_HOLD=stage),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(leftover) for p in kb.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(p.name.startswith(leftover) for p in kb.iterdir())

    listing = run_cli("--verbose", "--kb", str(kb), "list")
    assert listing.returncode == 0, listing.stderr[-800:]
    assert "removed leftovers of an interrupted index write" in listing.stderr
    left = [p.name for p in kb.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert left == [], left
    assert (kb / "bm25").is_dir() and (kb / "dense.faiss").is_file()
    with KnowledgeBase(cfg, kb, embedder=embedder) as reopened:  # and it still answers
        assert reopened.search("memory", k=2)


def test_set_up_waits_out_a_writer_that_holds_the_file(tmp_path):
    """A connection that may not wait at all (busy timeout 0) still sets up the file once the
    other writer lets go, rather than failing with 'database is locked'."""
    import sqlite3
    import threading

    from syllabus_common.sqlitedb import connect, set_up

    path = str(tmp_path / "held.sqlite")
    holder = connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    impatient = connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        impatient.execute("PRAGMA journal_mode=WAL")  # without set_up: refused at once
    set_up(impatient, lambda db: db.execute("PRAGMA journal_mode=WAL"), timeout=10)
    assert impatient.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("kind", ["summary cache", "catalog"])
def test_many_threads_open_one_new_sqlite_file_at_once(tmp_path, kind):
    """Several books summarized at once open one new summary cache together (and readers of one new
    KB its catalog); none may fail with 'database is locked'."""
    import threading

    from pipeline.kb.catalog import Catalog
    from pipeline.sumcache import SummaryCache

    errors: list[str] = []
    for trial in range(25):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        start = threading.Barrier(6)

        def one(n: int) -> None:
            try:
                start.wait()
                if kind == "summary cache":
                    cache = SummaryCache(folder)
                    cache.put(f"key{n}", "map", "text", "doc", 0.1)
                    cache.close()
                else:
                    Catalog(folder / "catalog.sqlite").close()
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if kind == "summary cache":
            assert SummaryCache(folder).count() == 6
    assert errors == []
