"""Transcript formats parse back with FFmpeg's own SRT/WebVTT readers; JSON keeps its schema;
writes are atomic; checkpoints survive torn writes; Chinese variants convert."""

from __future__ import annotations

import json
import re
import stat

import av
import pytest
from pydantic import BaseModel, ConfigDict

from ingest.asr.base import Segment, Word
from ingest.asr.zh import apply_variant, convert_text
from ingest.transcript import (Checkpoint, Transcript, from_dict, output_paths, parse_formats, to_dict, to_json,
                               to_srt, to_txt, to_vtt, write_outputs)
from syllabus_common.errors import ConfigError


def _transcript(words: bool = False) -> Transcript:
    w = [Word(0.0, 0.4, " Hello", 0.9), Word(0.5, 1.5, " world", 0.8)] if words else None
    segs = [
        Segment(0.0, 1.5, " Hello & <b>world</b>", -0.21, 0.01, 1.2, 0.0, w),
        Segment(1.5, 3.25, "two\n\nlines --> here", -0.3, 0.02, 1.3),
        Segment(59.999, 61.0, "   ", -0.3, 0.02, 1.3),  # empty text: no cue
        Segment(3725.5, 3727.25, "past an hour", -0.4, 0.05, 1.1, 0.2),
    ]
    return Transcript("lecture.mp4", 3727.3, "en", 0.98, "fake", "m", segs)


def _ffmpeg_cues(path):
    """(start s, end s, text) per cue, as FFmpeg's srt / webvtt demuxer reads the file."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(stream):
            if packet.size:
                start = float(packet.pts * stream.time_base)
                cues.append((start, start + float(packet.duration * stream.time_base), bytes(packet).decode()))
        return container.format.name, cues


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_back_with_a_real_parser(tmp_path, fmt):
    t = _transcript()
    path = tmp_path / f"x.{fmt}"
    path.write_text(to_srt(t) if fmt == "srt" else to_vtt(t), encoding="utf-8")
    demuxer, cues = _ffmpeg_cues(path)
    assert demuxer == ("srt" if fmt == "srt" else "webvtt")
    assert [(round(a, 3), round(b, 3)) for a, b, _ in cues] == [(0.0, 1.5), (1.5, 3.25), (3725.5, 3727.25)]
    starts = [a for a, _, _ in cues]
    assert starts == sorted(starts) and all(b >= a for a, b, _ in cues)
    assert "two\nlines" in cues[1][2]  # the blank line inside a segment must not split the cue
    if fmt == "vtt":
        assert cues[0][2] == "Hello &amp; &lt;b&gt;world&lt;/b&gt;"
    else:
        assert "-->" not in cues[1][2]


def test_srt_and_vtt_structure_is_strict():
    t = _transcript()
    srt = to_srt(t)
    blocks = srt.strip("\n").split("\n\n")
    assert len(blocks) == 3
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
    assert "01:02:05,500 --> 01:02:07,250" in srt
    vtt = to_vtt(t)
    assert vtt.startswith("WEBVTT\n\n")
    assert re.findall(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})$", vtt, re.M)[-1] == ("01:02:05.500", "01:02:07.250")


class _JWord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    start: float
    end: float
    word: str
    probability: float


class _JSegment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    words: list[_JWord] | None = None


class _JTranscript(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: int
    source: str
    duration: float
    language: str | None
    language_probability: float | None
    backend: str
    model: str
    device: str
    compute_type: str
    text: str
    segments: list[_JSegment]


@pytest.mark.parametrize("words", [False, True])
def test_json_schema_and_roundtrip(words):
    t = _transcript(words)
    data = json.loads(to_json(t))
    parsed = _JTranscript.model_validate(data)
    assert parsed.version == 1 and [s.id for s in parsed.segments] == list(range(4))
    assert (parsed.segments[0].words is not None) == words  # words only with --word-timestamps
    assert "words" not in data["segments"][1]
    back = from_dict(data)
    assert [(s.start, s.end, s.text.strip()) for s in back.segments] == [
        (round(s.start, 3), round(s.end, 3), s.text.strip()) for s in t.segments]


def test_txt_is_one_line_per_segment():
    assert to_txt(_transcript()).splitlines() == ["Hello & <b>world</b>", "two lines --> here", "past an hour"]


def test_outputs_are_written_atomically_with_names_from_the_input(tmp_path):
    out = tmp_path / "out"
    paths = output_paths(tmp_path / "Week 3 lecture.mp4", out, parse_formats("srt,vtt,txt,json"))
    assert [p.name for p in paths.values()] == [f"Week 3 lecture.{e}" for e in ("srt", "vtt", "txt", "json")]
    out.mkdir()
    (out / "Week 3 lecture.srt").write_text("old")
    write_outputs(_transcript(), paths)
    assert (out / "Week 3 lecture.srt").read_text().startswith("1\n00:00:00,000")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())  # no temp files left
    mode = stat.S_IMODE((out / "Week 3 lecture.vtt").stat().st_mode)
    assert mode & 0o044, "transcripts must be readable like any file the user writes"


def test_format_list_errors_name_the_valid_ones():
    assert parse_formats("all") == ["srt", "vtt", "txt", "json"]
    assert parse_formats(" SRT, .vtt,srt") == ["srt", "vtt"]
    with pytest.raises(ConfigError, match="valid: srt, vtt, txt, json"):
        parse_formats("srt,docx")


def test_checkpoint_resumes_after_a_torn_write_and_ignores_other_settings(tmp_path):
    path = tmp_path / ".x.partial.jsonl"
    header = {"source": "x.mp4", "size": 10, "options": {"beam_size": 1}}
    ck = Checkpoint(path, header)
    ck.open(resume=False)
    ck.language("en", 0.9)
    ck.segment(Segment(0.0, 2.0, "one", -0.1, 0.0, 1.0, words=[Word(0.0, 1.0, "one", 0.9)]))
    ck.segment(Segment(2.0, 4.5, "two", -0.1, 0.0, 1.0))
    ck.close()
    with path.open("a") as fh:
        fh.write('{"type": "segment", "segment": {"start": 4.5, "en')  # killed mid-write
    segments, position, language = Checkpoint(path, header).load()
    assert [s.text for s in segments] == ["one", "two"] and position == 4.5 and language["language"] == "en"
    assert segments[0].words[0].word == "one"
    again = Checkpoint(path, header)
    again.open(resume=True)  # drops the torn line, appends after it
    again.done_until(6.0)
    again.close()
    assert Checkpoint(path, header).load()[1] == 6.0
    assert Checkpoint(path, {**header, "options": {"beam_size": 5}}).load() is None


def test_chinese_variants_with_opencc():
    assert convert_text("软件和内存", "tw") == "軟體和記憶體"  # Taiwanese phrasing, not just characters
    assert convert_text("軟件", "cn") == "软件"
    segs = [Segment(0, 1, "我们的内存", -0.1, 0, 1, words=[Word(0, 1, "内存", 0.9)])]
    tw = apply_variant(segs, "zh", "tw")
    assert tw[0].text == "我們的記憶體" and tw[0].words[0].word == "記憶體"
    assert apply_variant(segs, "en", "tw")[0].text == "我们的内存"  # only Chinese transcripts change
    with pytest.raises(ConfigError, match="valid: none, tw, hk, cn"):
        apply_variant(segs, "zh", "xx")


def test_to_dict_rounds_and_drops_blank_text_from_cues_only():
    d = to_dict(_transcript())
    assert len(d["segments"]) == 4 and d["segments"][2]["text"] == ""
    assert len(to_srt(_transcript()).strip().split("\n\n")) == 3
    assert d["text"] == "Hello & <b>world</b> two\n\nlines --> here past an hour"
