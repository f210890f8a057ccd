"""The knowledge base on real PyMuPDF, MiniLM, FAISS, bm25s and SQLite."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pytest

import pdfgen
from conftest import run_cli
from syllabus_common.errors import KnowledgeBaseError
from pipeline.kb.search import rrf


def test_search_finds_the_page_holding_the_answer(kb_factory, topic_pdf):
    kb = kb_factory()
    [outcome] = kb.ingest([topic_pdf])
    assert outcome.status == "added" and outcome.pages == 8 and outcome.chunks >= 6
    hit1 = 0
    for question, page in pdfgen.QUESTIONS:
        hits = kb.search(question, k=3)
        assert page in [h.page_start for h in hits], question  # hit@3 for every question
        hit1 += hits[0].page_start == page
        assert hits[0].title == "A Book of Small Facts"
    assert hit1 >= len(pdfgen.QUESTIONS) - 1


def test_hits_carry_labels_sections_and_both_ranks(kb_factory, topic_pdf):
    kb = kb_factory()
    kb.ingest([topic_pdf])
    hit = kb.search("waggle dance of honeybees", k=1)[0]
    assert (hit.page_start, hit.page_label) == (4, "2")
    assert hit.section == "2 Honeybees"
    assert hit.dense_rank == 1 and hit.bm25_rank == 1
    assert hit.score == pytest.approx(2 / 61)


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_single_retriever_modes(kb_factory, topic_pdf, mode):
    kb = kb_factory()
    kb.ingest([topic_pdf])
    hit = kb.search("Fresnel lens", k=1, fusion=mode)[0]
    assert hit.page_start == 8
    assert (hit.bm25_rank is None) == (mode == "dense")


def test_rrf_rewards_agreement():
    fused = rrf([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]], k=60)
    assert fused[2] > fused[1] > fused[3]
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)


def test_reingest_unchanged_is_noop_and_changed_replaces(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    path = tmp_path / "book.pdf"
    path.write_bytes(topic_pdf.read_bytes())
    kb.ingest([path])
    gen = kb.catalog.generation
    [again] = kb.ingest([path])
    assert again.status == "unchanged" and kb.catalog.generation == gen
    pdfgen.topic_book(path, extra="Axolotls can regrow entire limbs, including bones and nerves.")
    [changed] = kb.ingest([path])
    assert changed.status == "replaced"
    docs = kb.documents()
    assert len(docs) == 1 and docs[0].id == changed.doc_id
    hit = kb.search("which animal regrows its limbs", k=1)[0]
    assert "Axolotls" in hit.text and hit.doc_id == changed.doc_id
    # No orphan chunks from the replaced version.
    total = kb.catalog.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert total == docs[0].n_chunks


def test_duplicate_content_under_another_name_is_skipped(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(topic_pdf.read_bytes())
    kb.ingest([topic_pdf])
    [dup] = kb.ingest([copy])
    assert dup.status == "duplicate" and len(kb.documents()) == 1


def test_remove_deletes_from_all_three_stores(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    other = pdfgen.long_book(tmp_path / "other.pdf", pages=2, seed=3)
    kb.ingest([topic_pdf, other])
    kb.remove("topics.pdf")
    assert [d.path for d in kb.documents()] == [str(other.resolve())]
    dense, lexical = kb.load_indexes()
    remaining = set(kb.catalog.db.execute("SELECT id FROM chunks").fetchall()[i][0] for i in range(kb.catalog.count_chunks()))
    assert dense.index.ntotal == len(remaining) == len(lexical.ids)
    assert set(lexical.ids.tolist()) == remaining
    assert all(h.doc_id != 1 for h in kb.search("honeybee waggle dance", k=5))
    with pytest.raises(KnowledgeBaseError, match="no document matches"):
        kb.remove("topics.pdf")


def test_batch_with_bad_files_finishes_the_others(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    bad = [pdfgen.encrypted_pdf(tmp_path / "locked.pdf"), tmp_path / "empty.pdf", tmp_path / "notes.pdf",
           pdfgen.truncated_pdf(topic_pdf, tmp_path / "cut.pdf")]
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "notes.pdf").write_text("plain text")
    good = pdfgen.long_book(tmp_path / "good.pdf", pages=2)
    outcomes = kb.ingest([bad[0], bad[1], good, bad[2], bad[3], topic_pdf])
    assert [o.status for o in outcomes] == ["failed", "failed", "added", "failed", "failed", "added"]
    assert len(kb.documents()) == 2


def test_failed_reingest_keeps_what_was_stored(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    path = tmp_path / "book.pdf"
    path.write_bytes(topic_pdf.read_bytes())
    kb.ingest([path])
    before = kb.search("Sicilian Defence", k=1)[0]
    pdfgen.truncated_pdf(topic_pdf, path)  # the file gets damaged on disk
    [outcome] = kb.ingest([path])
    assert outcome.failed
    after = kb.search("Sicilian Defence", k=1)[0]
    assert (after.chunk_id, after.page_start) == (before.chunk_id, before.page_start)


def test_kb_holds_no_pickles(kb_factory, topic_pdf):
    kb = kb_factory()
    kb.ingest([topic_pdf])
    for f in kb.path.rglob("*.npy"):
        np.load(f, allow_pickle=False)  # raises if an object array (pickle) was stored
    for f in kb.path.rglob("*"):
        if f.is_file():
            assert not f.read_bytes()[:2] == b"\x80\x04", f  # pickle protocol 4 header
    with sqlite3.connect(kb.path / "catalog.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stale_index_is_rebuilt_on_open(kb_factory, cfg, embedder, topic_pdf, tmp_path):
    from pipeline.kb import KnowledgeBase

    kb = kb_factory()
    kb.ingest([topic_pdf])
    (kb.path / "dense.faiss").write_bytes(b"garbage")  # as if a crash hit mid-write
    with kb.catalog.transaction():
        kb.catalog.bump_generation()
    fresh = KnowledgeBase(cfg, kb.path, embedder=embedder)
    try:
        assert fresh.search("Fresnel lens", k=1)[0].page_start == 8
        assert fresh._indexes_current()
    finally:
        fresh.close()


def test_missing_kb_is_a_clear_error(cfg, tmp_path):
    from pipeline.kb import KnowledgeBase

    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):
        KnowledgeBase(cfg, tmp_path / "nothing")


def test_cli_roundtrip_and_reopen_in_new_process(topic_pdf, tmp_path):
    kb = tmp_path / "kb"
    bad = tmp_path / "bad.pdf"
    bad.write_text("not a pdf")
    ingest = run_cli("--kb", str(kb), "ingest", str(topic_pdf), str(bad), "--json")
    assert ingest.returncode == 1  # one file failed
    statuses = [o["status"] for o in json.loads(ingest.stdout)["outcomes"]]
    assert statuses == ["added", "failed"]
    first = run_cli("--kb", str(kb), "search", "glaciers carve valleys", "-k", "2", "--json")
    second = run_cli("--kb", str(kb), "search", "glaciers carve valleys", "-k", "2", "--json")
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout)["hits"], json.loads(second.stdout)["hits"]
    assert [h["chunk_id"] for h in a] == [h["chunk_id"] for h in b]
    assert a[0]["page_start"] == 6 and a[0]["page_label"] == "4" and a[0]["section"] == "4 Glaciers"
    shown = run_cli("--kb", str(kb), "search", "glaciers carve valleys", "-k", "2")
    scores = [float(x) for x in re.findall(r"score (-?[0-9.]+)", shown.stdout)]
    assert scores == [round(h["rerank_score"], 4) for h in a]  # the score the order was made by
    listed = json.loads(run_cli("--kb", str(kb), "list", "--json").stdout)
    assert [d["n_pages"] for d in listed["documents"]] == [8]
    removed = run_cli("--kb", str(kb), "remove", "topics.pdf")
    assert removed.returncode == 0
    assert json.loads(run_cli("--kb", str(kb), "list", "--json").stdout)["documents"] == []


def test_hnsw_index_above_threshold(cfg, embedder, topic_pdf, tmp_path):
    from pipeline.kb import KnowledgeBase

    small = cfg.model_copy(deep=True)
    small.kb.hnsw_threshold = 3  # the topic book has more chunks than this
    kb = KnowledgeBase(small, tmp_path / "kb", embedder=embedder, create=True)
    try:
        kb.ingest([topic_pdf])
        dense, _ = kb.load_indexes()
        assert dense.kind == "hnsw" and dense.index.ntotal == kb.catalog.count_chunks()
        assert kb.search("Fresnel lens lighthouse", k=1)[0].page_start == 8
        assert kb.search("Fresnel lens lighthouse", k=1, docs=["topics.pdf"])[0].page_start == 8
    finally:
        kb.close()


def test_doc_filter_restricts_both_retrievers(kb_factory, topic_pdf, tmp_path):
    kb = kb_factory()
    other = pdfgen.long_book(tmp_path / "other.pdf", pages=2, seed=5)
    kb.ingest([topic_pdf, other])
    for mode in ("rrf", "dense", "bm25"):
        hits = kb.search("glaciers carve gradient memory", k=5, fusion=mode, docs=["other.pdf"])
        assert hits and all(h.path == str(other.resolve()) for h in hits)
    with pytest.raises(KnowledgeBaseError):
        kb.search("x", docs=["nope.pdf"])
