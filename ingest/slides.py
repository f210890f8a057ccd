"""Slides in lecture videos: sample frames with PyAV, find where the slide changes, OCR each slide once.

A frame is reduced to a small grey thumbnail (:data:`THUMB` pixels, area-averaged), and two
thumbnails are compared cell by cell on a ``grid`` x ``grid`` mosaic after undoing the best global
shift of up to :data:`MAX_SHIFT` thumbnail pixels (a camera pan or shake) and the median brightness
change (auto exposure). A cell *changed* when its mean absolute difference passes ``cell_change``
grey levels. A slide change moves at least ``min_changed_cells`` of the cells: a talking head, a
pointer or a hand moves a few of them, a camera shake none once aligned. The new picture must then
hold still for ``stable_seconds`` before it counts, so fades, builds and a person walking past do
not make slides. One frame per stable slide is OCR'd (cached by its pixels); slides whose OCR
finds no text (the camera on the lecturer) are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

THUMB = (128, 72)  # thumbnail width, height in pixels (16:9)
MAX_SHIFT = 4  # thumbnail pixels (~4% of the width): camera motion undone before comparing


@dataclass
class Slide:
    t_start: float  # seconds: when the slide appeared (the first sample that showed it)
    t_end: float  # when the next one appeared, or the video ended
    title: str
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SlideSettings:
    sample_seconds: float = 1.0
    grid: int = 8
    cell_change: float = 8.0
    min_changed_cells: float = 0.2
    stable_seconds: float = 2.0

    @classmethod
    def from_config(cls, cfg) -> "SlideSettings":
        s = cfg.slides
        return cls(s.sample_seconds, s.grid, s.cell_change, s.min_changed_cells, s.stable_seconds)


def has_picture(path: str | Path) -> bool:
    """True when the file has a real video stream (not just cover art in an audio file)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for stream in container.streams.video:
                attached = getattr(getattr(stream, "disposition", None), "attached_pic", None)
                if attached is not None and stream.disposition & attached:
                    continue
                return True
    except av.FFmpegError:
        return False
    return False


def sample_frames(path: str | Path, every: float) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, (H, W, 3) uint8 RGB frame), one per ``every`` seconds, decoding in order."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        due = 0.0
        try:
            for frame in container.decode(stream):
                t = frame.time
                if t is None or t + 1e-6 < due:
                    continue
                yield float(t), frame.to_ndarray(format="rgb24")
                due = (int(t / every + 1e-6) + 1) * every
        except av.FFmpegError as exc:  # a damaged tail: the slides so far still count
            log.warning("%s: video ends early at a damaged part (%s)", path, exc)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Area-averaged grey thumbnail, (THUMB[1], THUMB[0]) float32."""
    from PIL import Image

    grey = Image.fromarray(rgb).convert("L").resize(THUMB, Image.BOX)
    return np.asarray(grey, np.float32)


def cell_changes(a: np.ndarray, b: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) mean absolute grey difference per cell between thumbnails ``a`` and ``b``, after
    the global shift (within :data:`MAX_SHIFT`) that matches them best and the median brightness
    change are taken out."""
    h, w = a.shape
    best = None
    for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
            pa = a[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            pb = b[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            diff = pb - pa
            diff = np.abs(diff - np.median(diff))  # a global brightness change is not a new slide
            score = float(diff.mean())
            if best is None or score < best[0]:
                best = (score, diff)
    diff = best[1]
    rows = np.array_split(np.arange(diff.shape[0]), grid)
    cols = np.array_split(np.arange(diff.shape[1]), grid)
    return np.array([[diff[np.ix_(r, c)].mean() for c in cols] for r in rows])


class ChangeDetector:
    """Decides, sample by sample, when a new picture has appeared and held still.

    Cells that change while the rest of the picture stays (the lecturer, a pointer) are learnt as
    *moving* and left out of later comparisons; a slide change is a large share of the other,
    still cells changing at once."""

    def __init__(self, settings: SlideSettings):
        self.s = settings
        self.moving = np.zeros((settings.grid, settings.grid), bool)

    def share(self, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
        """Share of the still cells that changed, and the changed-cell mask."""
        changed = cell_changes(a, b, self.s.grid) > self.s.cell_change
        still = ~self.moving
        return float((changed & still).sum() / max(1, still.sum())), changed

    def differs(self, a: np.ndarray, b: np.ndarray, learn: bool = False) -> bool:
        share, changed = self.share(a, b)
        if share >= self.s.min_changed_cells:
            return True
        if learn:
            self.moving |= changed
            if self.moving.mean() > 0.75:  # movement everywhere: a moving camera, not a region; start over
                self.moving[:] = False
        return False


def detect_changes(frames: Iterator[tuple[float, np.ndarray]], settings: SlideSettings
                   ) -> Iterator[tuple[float, float, np.ndarray]]:
    """(start, time the picture was confirmed stable, frame) for every stable picture in turn."""
    detector = ChangeDetector(settings)
    ref = None  # thumbnail of the slide being shown
    cand = cand_since = None  # a different picture waiting to hold still
    for t, rgb in frames:
        th = thumbnail(rgb)
        if ref is not None and not detector.differs(ref, th, learn=True):
            cand = None  # still the same slide (a transient went away)
            continue
        if cand is None or detector.differs(cand, th, learn=ref is None):
            cand, cand_since = th, t
        if t - cand_since >= settings.stable_seconds:
            ref, cand = cand, None
            yield cand_since, t, rgb


def find_slides(path: str | Path, settings: SlideSettings, reader, duration: float | None = None) -> list[Slide]:
    """The slides of a video with their time ranges and OCR'd text (``reader``: an
    :class:`ingest.ocr.ImageReader`). [] for a file without a picture or without a slide change."""
    if not has_picture(path):
        return []
    last = [0.0]  # time of the last sampled frame: where the last slide ends without a duration

    def frames():
        for t, rgb in sample_frames(path, settings.sample_seconds):
            last[0] = t
            yield t, rgb

    shown: list[tuple[float, str, str]] = []
    first = None  # one picture all along is a still or a talking head, not a slide show: wait for a second
    for start, _confirmed, rgb in detect_changes(frames(), settings):
        if first is None and not shown:
            first = (start, rgb)
            continue
        for t, picture in ([first] if first is not None else []) + [(start, rgb)]:
            result = reader.read_image(picture)
            shown.append((t, result.title, result.text))
        first = None
    end = max(duration or 0.0, last[0] + settings.sample_seconds)
    slides = []
    for i, (start, title, text) in enumerate(shown):
        stop = shown[i + 1][0] if i + 1 < len(shown) else end
        if text.strip():
            slides.append(Slide(round(start, 2), round(stop, 2), title.strip(), text.strip()))
    return slides
