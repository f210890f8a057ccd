"""Lecture recordings in the knowledge base: time-window sections, chunks with t_start/t_end,
time citations, and a transcript cache keyed by file hash + backend + model."""

from __future__ import annotations

from asr_fakes import MEDIA, FakeBackend, asr_cache, fake  # noqa: F401 (fixtures)
from conftest import ROOT
from pipeline.timefmt import span


def _cfg(**asr):
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml", overrides={f"asr.{k}": v for k, v in asr.items()})


def _kb(cfg, embedder, path):
    from pipeline.kb import KnowledgeBase

    return KnowledgeBase(cfg, path, embedder=embedder, create=True)


def test_ingest_lecture_video_and_search_cites_times(asr_cache, embedder, tmp_path):
    cfg = _cfg(model="tiny.en")
    with _kb(cfg, embedder, tmp_path / "kb") as kb:
        [outcome] = kb.ingest([MEDIA / "clean.mp4"])
        assert outcome.status == "added", outcome.message
        [doc] = kb.documents()
        assert doc.kind == "media" and doc.title == "clean"
        hits = kb.search("how much memory does a seven billion parameter model need", k=1)
        assert hits and hits[0].t_start is not None and hits[0].page_start is None
        assert 0 <= hits[0].t_start < hits[0].t_end <= 13
        assert "14" in hits[0].text or "fourteen" in hits[0].text.lower()
        assert span(hits[0].t_start, hits[0].t_end).startswith("00:0")
        sections = kb.catalog.db.execute("SELECT title, t_start, t_end FROM sections").fetchall()
        assert [tuple(r) for r in sections][0][:2] == ("00:00–00:12", 0.0)
        cached = list((tmp_path / "kb" / "cache" / "transcripts").glob("*.json"))
        assert len(cached) == 1 and "-faster-whisper-tiny.en-" in cached[0].name


def test_sections_are_time_windows_and_reingest_reuses_the_transcript(fake, embedder, tmp_path):
    cfg = _cfg(backend="fake", section_seconds=20)
    lecture = tmp_path / "lecture.m4a"
    lecture.write_bytes((MEDIA / "lecture.m4a").read_bytes())
    with _kb(cfg, embedder, tmp_path / "kb") as kb:
        kb.ingest([lecture])
        assert len(FakeBackend.calls) == 1
        rows = kb.catalog.db.execute("SELECT title, level, t_start, t_end FROM sections ORDER BY ord").fetchall()
        assert [r[0] for r in rows] == ["00:00–00:20", "00:20–00:40", "00:40–01:00", "01:00–01:02"]
        assert all(r[1] == 1 for r in rows)
        chunks = kb.catalog.db.execute("SELECT section_path, t_start, t_end FROM chunks").fetchall()
        assert chunks and all(r[1] is not None and r[2] >= r[1] for r in chunks)
        windows = {r[0]: (r[2], r[3]) for r in rows}
        for path, t0, t1 in chunks:  # every chunk lies inside its time window
            w0, w1 = windows[path]
            assert w0 <= t0 and t1 <= w1 + 2.0

        kb.remove("lecture.m4a")
        kb.ingest([lecture])  # same bytes: the cached transcript is used, nothing is transcribed
        assert len(FakeBackend.calls) == 1
        assert len(kb.documents()) == 1

        lecture.write_bytes((MEDIA / "clean.m4a").read_bytes())  # the recording changed
        [outcome] = kb.ingest([lecture])
        assert outcome.status == "replaced" and len(FakeBackend.calls) == 2


def test_bad_media_fails_alone_in_a_batch(fake, embedder, tmp_path):
    cfg = _cfg(backend="fake")
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with _kb(cfg, embedder, tmp_path / "kb") as kb:
        outcomes = kb.ingest([broken, MEDIA / "clean.m4a"])
    assert [o.status for o in outcomes] == ["failed", "added"]
    assert outcomes[0].message.startswith(str(broken)) and "not a media file" in outcomes[0].message
