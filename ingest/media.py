"""Decode any audio or video file to 16 kHz mono float32 with PyAV (FFmpeg inside; no system ffmpeg).

Audio is streamed: :func:`stream_audio` yields blocks of a few seconds, so a 3-hour lecture never
sits in memory whole (3 h at 16 kHz float32 would be 691 MB). Every failure a user can cause — not a
media file, a damaged container, no audio stream, no samples — becomes one :class:`IngestError`
naming the file, so a batch reports it and goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from syllabus_common.errors import IngestError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz; what Whisper models take
# Extensions tried as media without probing. Anything else is probed (see :func:`is_media`).
MEDIA_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp",
    ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aiff", ".aif", ".amr",
})


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None  # seconds, from the container; None when it does not say
    codec: str  # audio codec, e.g. "aac"
    sample_rate: int  # of the stored audio, Hz
    channels: int
    has_video: bool


def _fail(path: Path, what: str) -> IngestError:
    return IngestError(f"{path}: {what}")


def _open(path: Path):
    """Open a container and pick its first audio stream; clear errors for each way that fails."""
    import av

    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a directory")
    if path.stat().st_size == 0:
        raise _fail(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _fail(path, f"not a media file or a damaged container ({reason})") from None
    if not container.streams.audio:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise _fail(path, f"no audio stream (streams: {', '.join(kinds)})")
    return container, container.streams.audio[0]


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return None


def probe(path: str | Path) -> MediaInfo:
    """What the file holds, without decoding it. Raises :class:`IngestError` for unusable files."""
    path = Path(path)
    container, stream = _open(path)
    with container:
        ctx = stream.codec_context
        return MediaInfo(
            path=str(path), container=container.format.name, duration=_duration(container, stream),
            codec=ctx.name, sample_rate=ctx.sample_rate or 0, channels=ctx.channels or 0,
            has_video=bool(container.streams.video),
        )


def is_media(path: str | Path) -> bool:
    """True for a file with a media extension, or one FFmpeg opens and finds audio in.

    PDFs are recognised by their magic bytes first, so a PDF without extension is never probed.
    """
    path = Path(path)
    if path.suffix.lower() in MEDIA_EXTENSIONS:
        return True
    if path.suffix.lower() == ".pdf":
        return False
    try:
        with path.open("rb") as fh:
            if fh.read(5) == b"%PDF-":
                return False
        probe(path)
        return True
    except (OSError, IngestError):
        return False


def stream_audio(path: str | Path, start: float = 0.0, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield the audio from ``start`` (seconds) on as float32 mono 16 kHz blocks, (n,) each.

    Blocks are ``block_seconds`` long except the last. A file that yields no samples at all raises
    :class:`IngestError`; a damaged packet in the middle is skipped with a warning (FFmpeg's own
    behaviour), so one bad second does not cost a whole lecture.
    """
    import av

    path = Path(path)
    container, stream = _open(path)
    block = max(1, int(block_seconds * SAMPLE_RATE))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    skip = 0  # samples still to drop to land exactly on ``start``
    if start > 0:
        try:
            # Seeks to a keyframe at or before ``start``; the first frame's time says where we are.
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            container.close()
            container, stream = _open(path)  # not seekable: decode from the top and drop samples
        skip = None  # decided from the first decoded frame
    pending: list[np.ndarray] = []
    pending_len = 0
    produced = 0
    bad_packets = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: skip it, like ffmpeg does
                bad_packets += 1
                if bad_packets == 1:
                    log.warning("%s: skipping undecodable audio (%s)", path, exc)
                continue
            for frame in frames:
                if skip is None:
                    # Position of the first decoded sample; before ``start`` after a backward seek.
                    first = frame.time if frame.time is not None else 0.0
                    skip = max(0, int(round((start - max(first, 0.0)) * SAMPLE_RATE)))
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    pending_len += out.samples
                while pending_len >= block + skip:
                    samples = np.concatenate(pending)
                    if skip:
                        samples, skip = samples[skip:], 0
                    yield samples[:block]
                    produced += block
                    pending, pending_len = [samples[block:]], len(samples) - block
        for out in resampler.resample(None):  # flush the resampler's delay line
            pending.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        if produced == 0 and not pending:
            raise _fail(path, f"cannot decode audio ({exc})") from None
        log.warning("%s: audio ends early at a damaged part (%s)", path, exc)
    finally:
        container.close()
    rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    rest = rest[skip or 0:]
    if rest.size:
        for i in range(0, rest.size, block):
            yield rest[i:i + block]
        produced += rest.size
    if produced == 0 and start <= 0:
        raise _fail(path, "no audio samples (zero length or undecodable audio)")


def load_audio(path: str | Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """The whole (or ``start``–``end``) audio as one float32 array; for short clips and tests."""
    blocks = []
    total = 0
    limit = None if end is None else int((end - start) * SAMPLE_RATE)
    for block in stream_audio(path, start):
        blocks.append(block)
        total += block.size
        if limit is not None and total >= limit:
            break
    audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return audio[:limit] if limit is not None else audio
