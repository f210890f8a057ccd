"""Transcripts: the result type, SRT / WebVTT / TXT / JSON writers, and the resume checkpoint.

Output files are written atomically (temporary name, fsync, rename), so a reader never sees half a
subtitle file. While a file is being transcribed, finished segments are appended to a JSON-lines
checkpoint and fsynced; after a crash or a kill the next run reads it back and continues from the
last finished segment instead of the start.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.asr.base import Segment, Word
from syllabus_common.atomic import atomic_path

log = logging.getLogger(__name__)

FORMATS = ("srt", "vtt", "txt", "json")
JSON_VERSION = 1


@dataclass
class Transcript:
    source: str  # the input file's name
    duration: float  # seconds of audio
    language: str | None
    language_probability: float | None
    backend: str
    model: str
    segments: list[Segment]
    device: str = ""
    compute_type: str = ""
    seconds: float = 0.0  # wall time spent transcribing in this run (not counting resumed work)
    resumed_at: float | None = None  # where this run picked up a checkpoint, seconds of audio
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


# ----- formats

def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    """One cue's text: no blank lines inside (a blank line ends a cue in both formats)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(line for line in lines if line)


def to_srt(t: Transcript) -> str:
    cues = []
    for i, s in enumerate((s for s in t.segments if _cue_text(s.text)), 1):
        text = _cue_text(s.text).replace("-->", "->")  # an arrow would read as a timing line
        cues.append(f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{text}\n")
    return "\n".join(cues)


def to_vtt(t: Transcript) -> str:
    cues = ["WEBVTT\n"]
    for s in t.segments:
        text = _cue_text(s.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if text:
            cues.append(f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{text}\n")
    return "\n".join(cues)


def to_txt(t: Transcript) -> str:
    return "".join(_cue_text(s.text).replace("\n", " ") + "\n" for s in t.segments if _cue_text(s.text))


def to_dict(t: Transcript, words: bool = True) -> dict:
    def seg(i: int, s: Segment) -> dict:
        d = {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip(),
             "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4),
             "compression_ratio": round(s.compression_ratio, 3), "temperature": s.temperature}
        if words and s.words is not None:
            d["words"] = [{"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                           "probability": round(w.probability, 4)} for w in s.words]
        return d

    return {
        "version": JSON_VERSION, "source": t.source, "duration": round(t.duration, 3), "language": t.language,
        "language_probability": None if t.language_probability is None else round(t.language_probability, 4),
        "backend": t.backend, "model": t.model, "device": t.device, "compute_type": t.compute_type,
        "text": t.text, "segments": [seg(i, s) for i, s in enumerate(t.segments)],
    }


def to_json(t: Transcript) -> str:
    return json.dumps(to_dict(t), ensure_ascii=False, indent=1) + "\n"


def from_dict(d: dict) -> Transcript:
    """Read back what :func:`to_dict` wrote (the knowledge base's transcript cache)."""
    segments = [
        Segment(s["start"], s["end"], s["text"], s["avg_logprob"], s["no_speech_prob"], s["compression_ratio"],
                s.get("temperature", 0.0),
                None if "words" not in s else [Word(w["start"], w["end"], w["word"], w["probability"]) for w in s["words"]])
        for s in d["segments"]
    ]
    return Transcript(d["source"], d["duration"], d["language"], d["language_probability"], d["backend"], d["model"],
                      segments, d.get("device", ""), d.get("compute_type", ""))


WRITERS = {"srt": to_srt, "vtt": to_vtt, "txt": to_txt, "json": to_json}


def parse_formats(value: str | list[str]) -> list[str]:
    """``"srt,vtt"`` or ``["srt", "vtt"]`` → checked list; ``all`` means every format."""
    from syllabus_common.errors import ConfigError

    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower().lstrip(".") for i in items if i.strip()]
    if items == ["all"]:
        return list(FORMATS)
    bad = [i for i in items if i not in FORMATS]
    if bad or not items:
        raise ConfigError(f"unknown transcript format {', '.join(bad) or '(none)'}; valid: {', '.join(FORMATS)}, all")
    return list(dict.fromkeys(items))


def output_paths(source: Path, out_dir: Path, formats: list[str], stem: str | None = None) -> dict[str, Path]:
    """Where each format goes: ``<out_dir>/<input stem>.<ext>`` (``stem`` overrides for name clashes)."""
    stem = stem or source.stem
    return {fmt: out_dir / f"{stem}.{fmt}" for fmt in formats}


def write_outputs(t: Transcript, paths: dict[str, Path]) -> list[Path]:
    """Write each format atomically, readable like any file the user creates (umask applies; a
    temporary file alone would stay owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    for fmt, path in paths.items():
        with atomic_path(path) as tmp:
            tmp.write_text(WRITERS[fmt](t), encoding="utf-8")
            os.chmod(tmp, 0o666 & ~umask)
    return list(paths.values())


# ----- checkpoint

class Checkpoint:
    """Append-only JSON lines: a header (what is being transcribed, how), the detected language,
    then each finished segment and each finished block. Every line is flushed and fsynced, so a
    kill loses at most the segment being decoded; a torn last line is ignored on read."""

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.header = header
        self._fh = None

    def load(self) -> tuple[list[Segment], float, dict | None] | None:
        """(segments, resume position in seconds, language record) if a matching checkpoint exists."""
        if not self.path.is_file():
            return None
        records = []
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # torn write at the kill; everything before it is good
        if not records or records[0].get("type") != "header" or records[0].get("header") != self.header:
            log.info("%s is for other input or settings; starting over", self.path)
            return None
        segments, position, language = [], 0.0, None
        for r in records[1:]:
            if r["type"] == "segment":
                s = r["segment"]
                words = None if s.get("words") is None else [Word(**w) for w in s["words"]]
                segments.append(Segment(**{**s, "words": words}))
                position = max(position, s["end"])
            elif r["type"] == "done":
                position = max(position, r["until"])
            elif r["type"] == "language":
                language = r
        return segments, position, language

    def _write(self, record: dict) -> None:
        if self._fh is None:
            raise RuntimeError("checkpoint not open")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def open(self, resume: bool) -> None:
        """Start a fresh file, or (``resume``) keep appending to the matching one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.is_file():
            self._truncate_torn_tail()
            self._fh = self.path.open("a", encoding="utf-8")
        else:
            self._fh = self.path.open("w", encoding="utf-8")
            self._write({"type": "header", "header": self.header})

    def _truncate_torn_tail(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(end)

    def language(self, language: str, probability: float) -> None:
        self._write({"type": "language", "language": language, "probability": probability})

    def segment(self, s: Segment) -> None:
        self._write({"type": "segment", "segment": asdict(s)})

    def done_until(self, seconds: float) -> None:
        self._write({"type": "done", "until": seconds})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
