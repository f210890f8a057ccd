"""OCR for pages and video frames that carry no text layer.

Engines sit in a registry (:data:`ENGINES`, :mod:`ingest.ocr_engines`); the default, ``rapidocr``, is PP-OCRv4 (Chinese and
English in one recognizer) run by ONNX Runtime from the ``rapidocr-onnxruntime`` wheel, whose
models ship inside the package: nothing is downloaded. ``tesseract`` goes through PyMuPDF's
Tesseract integration when the ``tesseract`` program and its language data are installed.

:class:`PageReader` decides page by page whether a page needs OCR (few characters from the text
layer on a page mostly covered by images), renders it, and keeps every result in the knowledge
base's ``cache/ocr/`` keyed by the SHA-256 of the rendered pixels, so re-ingesting a scan, or
resuming one after a crash, reads no page twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ingest.ocr_engines import ENGINES, Box, cjk  # noqa: F401  (Box: part of this module's API)
from syllabus_common.atomic import atomic_write_text
from syllabus_common.errors import ConfigError, IngestError, ModelNotAvailable

log = logging.getLogger(__name__)

MODES = ("auto", "always", "never")
LANGUAGES = ("en", "zh-TW", "zh-CN")
CACHE_VERSION = 2  # bump when the text produced from the same pixels changes
# auto: a page is read by OCR when its text layer yields fewer than this many characters…
MIN_TEXT_CHARS = 50
# …and images cover at least this share of it (a scan with a stray page number still qualifies).
MIN_IMAGE_COVER = 0.3


@dataclass
class Recognized:
    text: str
    title: str = ""  # the first line when it is set larger than the rest (slides)


@lru_cache(maxsize=2)
def load_engine(name: str, languages: tuple[str, ...] = ("en", "zh-TW"), threads: int = 0):
    """One engine instance per process and settings (loading and rewriting the ONNX models takes ~1 s)."""
    if name not in ENGINES:
        raise ConfigError(f"unknown ocr.engine {name!r}; valid: {', '.join(ENGINES)}")
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise ConfigError(f"unknown ocr.languages {bad}; valid: {', '.join(LANGUAGES)}")
    return ENGINES[name](tuple(languages), threads)


# ----- text from boxes
@dataclass
class Line:
    text: str
    top: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _lines(boxes: list[Box], min_score: float) -> list[Line]:
    """Reading order: boxes whose vertical centres fall within half a line height form a line, left
    to right. Chinese pieces join without a space, everything else with one."""
    boxes = sorted((b for b in boxes if b.text.strip() and b.score >= min_score), key=lambda b: (b.y0 + b.y1) / 2)
    groups: list[list[Box]] = []
    for b in boxes:
        centre = (b.y0 + b.y1) / 2
        if groups:
            last = groups[-1]
            top, bottom = min(x.y0 for x in last), max(x.y1 for x in last)
            if abs(centre - (top + bottom) / 2) <= (bottom - top) / 2:
                last.append(b)
                continue
        groups.append([b])
    lines = []
    for group in groups:
        group.sort(key=lambda b: b.x0)
        text = ""
        for b in group:
            piece = b.text.strip()
            glue = "" if not text or (cjk(text[-1]) and cjk(piece[0])) else " "
            text += glue + piece
        lines.append(Line(text, min(b.y0 for b in group), max(b.y1 for b in group)))
    return lines


def boxes_to_text(boxes: list[Box], min_score: float = 0.5) -> str:
    """The lines in reading order; a gap of more than one line height starts a new paragraph."""
    out: list[str] = []
    previous_bottom = None
    for line in _lines(boxes, min_score):
        if previous_bottom is not None and line.top - previous_bottom > line.height:
            out.append("")
        out.append(line.text)
        previous_bottom = line.bottom
    return "\n".join(out)


def title_of(boxes: list[Box], min_score: float = 0.5) -> str:
    """A slide's title: its first line when that is set larger than the rest (or is all there is)."""
    lines = _lines(boxes, min_score)
    if not lines:
        return ""
    if len(lines) == 1:
        return lines[0].text
    rest = sorted(line.height for line in lines[1:])
    return lines[0].text if lines[0].height >= 1.2 * rest[len(rest) // 2] else ""


@lru_cache(maxsize=4)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def chinese_script(text: str) -> str | None:
    """"traditional", "simplified" or None (no Chinese, or undecided): which characters change when
    the text is converted each way tells which script it is mostly written in."""
    han = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if len(han) < 4:
        return None
    sample = "".join(han)
    as_simplified = sum(a != b for a, b in zip(sample, _opencc("t2s").convert(sample)))
    as_traditional = sum(a != b for a, b in zip(sample, _opencc("s2t").convert(sample)))
    if as_simplified > as_traditional:
        return "traditional"
    if as_traditional > as_simplified:
        return "simplified"
    return None


def normalize_script(text: str, languages: tuple[str, ...]) -> str:
    """The recognizer mixes scripts (it knows many characters only in one of them): a Traditional
    page is converted to Traditional (Taiwan, OpenCC ``s2tw``), a Simplified one to Simplified, as
    far as ``ocr.languages`` names that script."""
    script = chinese_script(text)
    if script == "traditional" and "zh-TW" in languages:
        return _opencc("s2tw").convert(text)
    if script == "simplified" and "zh-CN" in languages:
        return _opencc("t2s").convert(text)
    return text


# ----- pages
def image_cover(page) -> float:
    """Share of the page's area covered by images (0-1; overlapping images count once at most)."""
    area = abs(page.rect) or 1.0
    covered = 0.0
    for info in page.get_image_info():
        rect = page.rect & info["bbox"]
        covered += abs(rect) if not rect.is_empty else 0.0
    return min(1.0, covered / area)


def needs_ocr(text: str, cover: float, mode: str) -> bool:
    """auto: a page whose text layer gives fewer than :data:`MIN_TEXT_CHARS` characters while images
    cover at least :data:`MIN_IMAGE_COVER` of it. A page with a real text layer is never read."""
    if mode == "never":
        return False
    if mode == "always":
        return True
    return len("".join(text.split())) < MIN_TEXT_CHARS and cover >= MIN_IMAGE_COVER


def render(page, dpi: int) -> np.ndarray:
    """The page as (H, W, 3) uint8 RGB at ``dpi``."""
    pix = page.get_pixmap(dpi=dpi, alpha=False, colorspace="rgb")
    return np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)[:, :, :3]


class OCRCache:
    """``cache/ocr/<sha256 of pixels + settings>.json``: {"text", "title"}; written atomically."""

    def __init__(self, folder: Path | None, engine: str, languages: tuple[str, ...]):
        self.folder = Path(folder) if folder is not None else None
        self.salt = json.dumps([CACHE_VERSION, engine, sorted(languages)]).encode()

    def key(self, image: np.ndarray) -> str:
        h = hashlib.sha256(self.salt)
        h.update(np.asarray(image.shape, np.int64).tobytes())
        h.update(np.ascontiguousarray(image).tobytes())
        return h.hexdigest()

    def get(self, key: str) -> Recognized | None:
        if self.folder is None:
            return None
        try:
            data = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            return Recognized(str(data["text"]), str(data.get("title", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, result: Recognized) -> None:
        if self.folder is not None:
            data = {"text": result.text, "title": result.title}
            atomic_write_text(self.folder / f"{key}.json", json.dumps(data, ensure_ascii=False))


class ImageReader:
    """OCR of images with the cache: the part pages and video frames share."""

    def __init__(self, engine: str = "rapidocr", languages=("en", "zh-TW"), cache_dir: Path | None = None,
                 threads: int = 0):
        self.engine_name = engine
        self.languages = tuple(languages)
        self.threads = threads
        self.cache = OCRCache(Path(cache_dir) / "ocr" if cache_dir is not None else None, engine, self.languages)
        self.recognised = 0  # images actually run through the engine (not from the cache)

    def read_image(self, image: np.ndarray) -> Recognized:
        key = self.cache.key(image)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        engine = load_engine(self.engine_name, self.languages, self.threads)
        boxes = engine.recognize(image)
        result = Recognized(normalize_script(boxes_to_text(boxes), self.languages),
                            normalize_script(title_of(boxes), self.languages))
        self.recognised += 1
        self.cache.put(key, result)
        return result


class PageReader(ImageReader):
    """What ``extract_pdf(ocr=...)`` and the e-book reader call per page."""

    def __init__(self, mode: str = "auto", dpi: int = 200, on_page: Callable[[int], None] | None = None, **kw):
        if mode not in MODES:
            raise ConfigError(f"ocr.enabled must be one of {', '.join(MODES)}, not {mode!r}")
        super().__init__(**kw)
        self.mode, self.dpi, self.on_page = mode, dpi, on_page

    def wanted(self, page, text: str) -> bool:
        if self.mode == "never":
            return False
        return needs_ocr(text, image_cover(page) if self.mode == "auto" else 1.0, self.mode)

    def read(self, page) -> str:
        if self.on_page is not None:
            self.on_page(0)  # about to start: the progress display opens its "OCR (pages)" bar
        try:
            text = self.read_image(render(page, self.dpi)).text
        except (ConfigError, ModelNotAvailable):
            raise
        except Exception as exc:  # one unreadable picture must not cost the document
            raise IngestError(f"page {page.number + 1}: OCR failed ({type(exc).__name__}: {exc})") from None
        if self.on_page is not None:
            self.on_page(1)
        return text


def _engine_settings(cfg) -> dict:
    ocr = getattr(cfg, "ocr", None)
    if ocr is None:
        return {}
    return dict(engine=ocr.engine, languages=tuple(ocr.languages), threads=ocr.threads)


def page_reader(cfg, cache_dir: Path | None, on_page=None) -> PageReader | None:
    """The page reader the config asks for (None when ``ocr.enabled`` is never)."""
    ocr = getattr(cfg, "ocr", None)
    if ocr is not None and ocr.enabled == "never":
        return None
    options = dict(mode=ocr.enabled, dpi=ocr.dpi) if ocr is not None else {}
    return PageReader(on_page=on_page, cache_dir=cache_dir, **options, **_engine_settings(cfg))


def image_reader(cfg, cache_dir: Path | None) -> ImageReader:
    """The reader for video frames: the same engine and cache as pages."""
    return ImageReader(cache_dir=cache_dir, **_engine_settings(cfg))
