"""A lecture recording as a knowledge-base document: its transcript, in time-window sections.

Sections are fixed windows (``asr.section_seconds``, 5 minutes by default) titled by their time
range, so `summarize` gives one summary per window and every chunk carries ``t_start``/``t_end``
for citations such as ``[lecture.mp4 12:31–13:05]``. The transcript is cached in the KB's
``cache/transcripts/`` under the file's SHA-256 + backend + model (+ the settings that change the
text), so re-ingesting an unchanged recording, or rebuilding a KB, never transcribes it twice; an
interrupted transcription resumes from its checkpoint there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ingest.hashing import sha256_file
from ingest.transcript import Transcript, from_dict, to_json
from ingest.types import ExtractedDocument, Section, Span
from syllabus_common.atomic import atomic_write_text
from syllabus_common.errors import IngestError
from syllabus_common.timefmt import duration, span as time_span

log = logging.getLogger(__name__)


def cache_key(sha256: str, backend: str, model: str, settings: dict) -> str:
    """``<sha256>-<backend>-<model>-<settings digest>``: one transcript per file, engine and text settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    safe_model = "".join(c if c.isalnum() or c in ".-_" else "_" for c in model)[:60]
    return f"{sha256}-{backend}-{safe_model}-{digest}"


def time_sections(t: Transcript, window: float, title: str) -> tuple[list[Section], list[Span]]:
    """Windows of ``window`` seconds (the last one ends with the audio) and one span per segment,
    filed under the window its start falls in. Empty windows (silence) get no section."""
    sections: dict[int, Section] = {}
    spans: list[Span] = []
    for s in t.segments:
        text = s.text.strip()
        if not text:
            continue
        index = int(s.start // window)
        if index not in sections:
            start, end = index * window, min((index + 1) * window, max(t.duration, s.end))
            label = time_span(start, end)
            sections[index] = Section(title=label, level=1, path=(label,), t_start=start, t_end=end)
        section = sections[index]
        section.t_end = max(section.t_end, s.end)
        spans.append(Span(text=text, section_path=section.path, t_start=s.start, t_end=s.end))
    return [sections[i] for i in sorted(sections)], spans


_LOADED: dict = {}  # the last loaded backend, reused for the next file of a batch


def _backend(name: str, model_options, notify):
    from ingest.asr import BACKENDS, load_backend

    key = (name, id(BACKENDS.entry(name).factory), repr(model_options))
    if key not in _LOADED:
        _LOADED.clear()  # one model in memory at a time
        _LOADED[key] = load_backend(name, model_options, notify)
    return _LOADED[key]


def transcribe_cached(path: Path, cfg, cache_dir: Path, on_progress=None, notify=None,
                      sha256: str | None = None) -> Transcript:
    """The transcript of ``path`` with the config's ASR settings, from the cache or made now
    (``sha256``: the file's digest when the caller has it already; a long recording takes a while to hash)."""
    from ingest.asr import BACKENDS, options_from_config, transcribe_file
    from ingest.asr.runner import finish

    cache_dir = Path(cache_dir)
    # Model files (joined or converted weights) live in the user cache, shared by all KBs; the KB's cache/
    # holds only this file's transcript.
    name, model_options, decode = options_from_config(cfg.asr, offline=cfg.offline)
    BACKENDS.entry(name)  # unknown names fail before any hashing
    settings = {**decode.fingerprint(), "zh_variant": cfg.asr.zh_variant, "compute_type": cfg.asr.compute_type}
    key = cache_key(sha256 or sha256_file(path), name, cfg.asr.model, settings)
    folder = cache_dir / "transcripts"
    cached = folder / f"{key}.json"
    if cached.is_file():
        try:
            transcript = from_dict(json.loads(cached.read_text(encoding="utf-8")))
            log.info("%s: reusing transcript %s", path, cached.name)
            return transcript
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("transcript cache %s unreadable (%s); transcribing again", cached, exc)
    backend = _backend(name, model_options, notify)
    checkpoint = folder / f"{key}.partial.jsonl"
    transcript = transcribe_file(path, backend, decode, checkpoint, zh_variant=cfg.asr.zh_variant,
                                 block_seconds=cfg.asr.block_seconds, on_progress=on_progress, notify=notify)
    atomic_write_text(cached, to_json(transcript))
    finish(checkpoint)
    return transcript


def extract_media(path: str | Path, cfg, cache_dir: str | Path, on_progress=None, notify=None,
                  sha256: str | None = None) -> ExtractedDocument:
    """Transcribe (or reuse the cached transcript of) a recording, as a time-sectioned document.
    ``on_progress(done, total)`` gets seconds of audio transcribed (not called for a cached transcript)."""
    path = Path(path)
    transcript = transcribe_cached(path, cfg, Path(cache_dir), on_progress=on_progress, notify=notify, sha256=sha256)
    sections, spans = lecture_outline(path, transcript, cfg, Path(cache_dir))
    warnings = list(transcript.warnings)
    if not spans:
        raise IngestError(f"{path}: no speech recognised in {duration(transcript.duration)} of audio")
    return ExtractedDocument(
        path=str(path), kind="media", title=path.stem, author="", pages=[], sections=sections, spans=spans,
        warnings=warnings, language=transcript.language, outline_source="time windows",
    )


def lecture_outline(path: Path, transcript, cfg, cache_dir: Path | None) -> tuple[list[Section], list[Span]]:
    """A recording's sections and spans: the transcript in time windows, with the video's slides."""
    from ingest.lecture import find_lecture_slides, with_slides

    window = cfg.asr.section_seconds
    sections, spans = time_sections(transcript, window, Path(path).stem)
    try:
        slides = find_lecture_slides(Path(path), cfg, cache_dir, transcript.duration)
    except Exception as exc:  # ModelNotAvailable and friends: the transcript alone still makes a document
        from syllabus_common.errors import ConfigError, ModelNotAvailable

        if isinstance(exc, (ConfigError, ModelNotAvailable)):
            raise
        log.warning("%s: slides skipped (%s: %s)", path, type(exc).__name__, exc)
        slides = []
    return with_slides(sections, spans, slides, window)
