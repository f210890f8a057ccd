"""Transcribe one media file with any backend: streamed in blocks, checkpointed, resumable.

The audio is decoded block by block (``block_seconds``, 10 minutes by default: 38 MB of float32),
so memory stays flat however long the lecture. A block ends at the quietest tenth of a second in
its last few seconds, not mid-word; the rest carries into the next block. Each finished segment
goes to the checkpoint at once; a rerun after a crash or kill starts decoding where the last
finished segment ended, with the language the first block detected.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ingest.asr.base import Backend, DecodeOptions, Segment
from ingest.media import SAMPLE_RATE, probe, stream_audio
from ingest.transcript import Checkpoint, Transcript

log = logging.getLogger(__name__)

CUT_SEARCH = 5.0  # seconds at a block's end searched for a quiet place to cut
CUT_FRAME = 0.1  # seconds; energy is compared per frame of this length
STREAM_BLOCK = 30.0  # seconds decoded per step from the file

ProgressFn = Callable[[float, "float | None"], None]  # (audio seconds done, total or None)


def quiet_cut(audio: np.ndarray, target: int, search: int, frame: int) -> int:
    """Sample index near ``target`` (within ``search`` before it) at the quietest frame's middle."""
    lo = max(0, target - search)
    window = audio[lo:target]
    n = len(window) // frame
    if n == 0:
        return target
    energy = np.square(window[: n * frame].reshape(n, frame)).mean(axis=1)  # (n,) mean power per frame
    return lo + int(np.argmin(energy)) * frame + frame // 2


def checkpoint_header(path: Path, backend: Backend, options: DecodeOptions, block_seconds: float) -> dict:
    st = path.stat()
    return {"version": 1, "source": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "backend": backend.name, "model": backend.model_name, "compute_type": backend.compute_type,
            "options": options.fingerprint(), "block_seconds": block_seconds}


def transcribe_file(
    path: str | Path,
    backend: Backend,
    options: DecodeOptions,
    checkpoint: str | Path | None = None,
    *,
    zh_variant: str = "none",
    block_seconds: float = 600.0,
    restart: bool = False,
    on_progress: ProgressFn | None = None,
    notify: Callable[[str], None] | None = None,
) -> Transcript:
    """Transcribe ``path``; resume from ``checkpoint`` when it matches (unless ``restart``).

    The checkpoint is left in place; remove it once the outputs are safely written
    (:func:`finish`), so a crash between the two still resumes instead of starting over.
    """
    from ingest.asr.zh import apply_variant

    path = Path(path)
    info = probe(path)  # fails fast, with a clear message, on files that are not media
    total = info.duration
    progress = on_progress or (lambda done, total: None)
    say = notify or (lambda message: None)
    if options.vad and not backend.supports_vad:
        say(f"{backend.name} has no VAD; transcribing all audio, silence included")
    options = replace(options)

    ck = Checkpoint(Path(checkpoint), checkpoint_header(path, backend, options, block_seconds)) if checkpoint else None
    segments, position, detected_probability = _resume(ck, restart, options, path, say)
    resumed_at = position if position > 0 else None
    started = time.perf_counter()

    def report(done: float) -> None:  # the container's duration is an estimate; decoded samples are the truth
        progress(done, None if total is None else max(total, done))

    report(position)

    def run_block(audio: np.ndarray, start: float) -> None:
        nonlocal detected_probability
        end = start + len(audio) / SAMPLE_RATE
        pieces, detected = backend.transcribe(audio, options)
        if options.language is None:  # the first block decides for the rest of the file
            options.language, detected_probability = detected.language, detected.probability
            if ck is not None:
                ck.language(detected.language, detected.probability)
        for s in pieces:
            if not s.text.strip():
                continue
            s = s.shifted(start)
            prev_start = segments[-1].start if segments else start
            s.start = min(max(s.start, prev_start, start), end)
            s.end = min(max(s.end, s.start), end)
            s.text = s.text.strip()
            segments.append(s)
            if ck is not None:
                ck.segment(s)
            report(s.end)
        if ck is not None:
            ck.done_until(end)
        report(end)

    decoded_until = position
    try:
        for audio, start in blocks(path, position, block_seconds):
            run_block(audio, start)
            decoded_until = start + len(audio) / SAMPLE_RATE
    finally:
        if ck is not None:
            ck.close()

    duration = max(decoded_until, position)
    if total is not None and duration < position + 0.01:  # nothing left to decode after a resume
        duration = max(duration, total)
    return Transcript(
        source=path.name, duration=duration, language=options.language, language_probability=detected_probability,
        backend=backend.name, model=backend.model_name, segments=apply_variant(segments, options.language, zh_variant),
        device=backend.device, compute_type=backend.compute_type, seconds=time.perf_counter() - started,
        resumed_at=resumed_at,
    )


def _resume(ck: Checkpoint | None, restart: bool, options: DecodeOptions, path: Path,
            say: Callable[[str], None]) -> tuple[list[Segment], float, float | None]:
    """(segments done, seconds decoded, language probability) from a matching checkpoint, which is
    then opened for appending; the language it recorded goes into ``options``."""
    state = None if (ck is None or restart) else ck.load()
    segments: list[Segment] = []
    position, probability = 0.0, None
    if state is not None:
        segments, position, lang = state
        if lang is not None:
            options.language, probability = lang["language"], lang["probability"]
        if position > 0:
            say(f"{path.name}: resuming at {position:.1f} s ({len(segments)} segments done)")
    if ck is not None:
        ck.open(resume=state is not None)
    return segments, position, probability


def blocks(path: Path, start: float, block_seconds: float) -> Iterator[tuple[np.ndarray, float]]:
    """The audio from ``start`` in blocks of about ``block_seconds``, each ending at the quietest place
    of its last few seconds: (samples, start time in seconds)."""
    block = int(block_seconds * SAMPLE_RATE)
    search, frame = int(CUT_SEARCH * SAMPLE_RATE), max(1, int(CUT_FRAME * SAMPLE_RATE))
    buffered: list[np.ndarray] = []
    n_buffered = 0
    for chunk in stream_audio(path, start=start, block_seconds=min(STREAM_BLOCK, block_seconds)):
        buffered.append(chunk)
        n_buffered += len(chunk)
        if n_buffered < block + search:
            continue
        audio = np.concatenate(buffered)
        cut = quiet_cut(audio, block, search, frame)
        yield audio[:cut], start
        start += cut / SAMPLE_RATE
        buffered, n_buffered = [audio[cut:]], len(audio) - cut
    if n_buffered:
        yield np.concatenate(buffered), start


def finish(checkpoint: str | Path | None) -> None:
    """Drop a checkpoint once its transcript is safely written."""
    if checkpoint is not None:
        try:
            os.unlink(checkpoint)
        except FileNotFoundError:
            pass


def checkpoint_path(out_dir: Path, stem: str) -> Path:
    """The checkpoint beside the outputs: hidden, named after the input."""
    return Path(out_dir) / f".{stem}.partial.jsonl"
