"""Lecture recordings in the knowledge base: time-window sections, chunks with t_start/t_end,
time citations, and a transcript cache keyed by file hash + backend + model."""

from __future__ import annotations

import re

from asr_fakes import MEDIA, FakeBackend, asr_cache, fake  # noqa: F401 (fixtures)
from conftest import ROOT
from syllabus_common.timefmt import span


def _cfg(**asr):
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml", overrides={f"asr.{k}": v for k, v in asr.items()})


def _kb(cfg, embedder, path):
    from pipeline.kb import KnowledgeBase

    return KnowledgeBase(cfg, path, embedder=embedder, create=True)


def _ingested_copy(tmp_path, embedder, cfg):
    """A copy of the lecture clip (so a test may change it), ingested into a fresh KB at tmp_path/kb."""
    lecture = tmp_path / "lecture.m4a"
    lecture.write_bytes((MEDIA / "lecture.m4a").read_bytes())
    kb = _kb(cfg, embedder, tmp_path / "kb")
    kb.ingest([lecture])
    return lecture, kb


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
    lecture, kb = _ingested_copy(tmp_path, embedder, cfg)
    with kb:
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


def test_summarize_a_lecture_recording_by_time_windows(asr_cache, tmp_path):
    """Real speech model (tiny.en) and the bundled LLM: the recording is transcribed once, summarized
    window by window with time ranges, and the second run reuses transcript and summaries."""
    import json

    from conftest import run_cli

    config = tmp_path / "config.yaml"
    config.write_text("asr:\n  model: tiny.en\n  section_seconds: 20\nllm:\n  context: 2048\n"
                      "summarize:\n  mode: generative\n  summary_tokens: 24\n  book_tokens: 32\n")
    cache = tmp_path / "cache"
    out = tmp_path / "lecture-summary.md"
    args = ("-q", "--config", str(config), "--kb", str(tmp_path / "no-kb"), "summarize", str(MEDIA / "lecture.m4a"),
            "-o", str(out), "--json")
    from test_llm_support import cache_env

    env = cache_env(cache)  # the converted LLM and the embedder's export, shared with the other tests
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    book = json.loads(first.stdout)
    titles = [u["title"] for u in book["units"]]
    # 20 s windows; the last one runs to the end of the last segment (the speech ends at 01:02)
    assert titles[:2] == ["00:00–00:20", "00:20–00:40"] and titles[2].startswith("00:40–01:0"), titles
    wheres = [u["where"] for u in book["units"]]  # the spoken range: a segment may run past its window
    assert wheres[:2] == titles[:2] and wheres[2].startswith("00:40–01:0")
    assert book["coverage"] == f"sections summarized: {len(titles)}/{len(titles)}" and len(titles) in (3, 4)
    assert book["outline_source"] == "time windows"
    assert all(u["points"] for u in book["units"]) and book["overview"]["points"]
    for u in book["units"]:  # each key point at its mm:ss, inside its window
        assert all(re.fullmatch(r"\d\d:\d\d", p["where"]) and u["t_start"] <= p["t_start"] <= u["t_end"] for p in u["points"])
    assert book["faithfulness"]["line"] in out.read_text(encoding="utf-8")
    markdown = out.read_text(encoding="utf-8")
    assert "\n## 00:20–00:40\n" in markdown and "## Whole lecture" in markdown
    [transcript] = (cache / "transcripts").glob("*.json")
    made = transcript.stat().st_mtime_ns

    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads(again.stdout)
    assert rerun["model_calls"] == 0 and rerun["cache_hits"] == book["model_calls"] > 0
    assert rerun["units"] == book["units"]
    assert transcript.stat().st_mtime_ns == made and len(list((cache / "transcripts").glob("*.json"))) == 1


def test_summarize_takes_an_ingested_recording_from_the_knowledge_base(fake, embedder, tmp_path):
    from pipeline.sources import lecture as lecture_text

    cfg = _cfg(backend="fake", section_seconds=20)
    lecture, kb = _ingested_copy(tmp_path, embedder, cfg)
    kb.close()
    calls = len(FakeBackend.calls)
    doc = lecture_text(lecture, cfg, tmp_path / "kb")
    assert len(FakeBackend.calls) == calls  # the KB's transcript, nothing transcribed
    assert doc.kind == "media" and doc.outline_source == "time windows"
    assert [s.title for s in doc.sections] == ["00:00–00:20", "00:20–00:40", "00:40–01:00", "01:00–01:02"]
    assert all(s.t_start is not None for s in doc.spans) and "part" in doc.spans[0].text

    lecture.write_bytes((MEDIA / "clean.m4a").read_bytes())  # changed since ingest: transcribed afresh
    doc = lecture_text(lecture, cfg, tmp_path / "kb")
    assert len(FakeBackend.calls) == calls + 1 and [s.title for s in doc.sections] == ["00:00–00:12"]


def test_ingest_reports_transcription_progress_in_audio_seconds(fake, embedder, tmp_path):
    from pipeline.progress import Progress

    seen = []

    class Recorder(Progress):
        def stage(self, description, total):
            seen.append(("stage", description))

        def position(self, done, total):
            seen.append(("position", done, total))

    cfg = _cfg(backend="fake")
    with _kb(cfg, embedder, tmp_path / "kb") as kb:
        [outcome] = kb.ingest([MEDIA / "lecture.m4a"], Recorder())
    assert outcome.status == "added" and 62 < outcome.seconds < 64 and outcome.pages == 0
    assert ("stage", "transcribing (s of audio)") in seen
    positions = [(done, total) for kind, *rest in seen if kind == "position" for done, total in [rest]]
    assert len(positions) >= 2 and positions[-1][0] == positions[-1][1] and 62 < positions[-1][1] < 64
    assert [d for d, _ in positions] == sorted(d for d, _ in positions)
