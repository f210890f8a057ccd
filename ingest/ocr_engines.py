"""The OCR engines: RapidOCR (PP-OCRv4 on ONNX Runtime, the default) and Tesseract through PyMuPDF.

An engine turns an (H, W, 3) uint8 RGB picture into :class:`Box` es; :mod:`ingest.ocr` puts them in
reading order, caches them and decides which pages need it.

Where RapidOCR's time goes on a 150 dpi page of 28 lines (one thread, CPU seconds, as shipped):
detection 0.9, recognition 3.3, the angle classifier 0 (off: scans and slides are upright). The
settings in :class:`RapidSettings` cut both, each measured in ``eval/ocr_eval.py``:

* the detector sees the picture scaled to a long side of ``det_max_side`` pixels (1280): finding
  lines does not need the resolution that reading them does, so lines are found on the smaller
  picture and cut from the full one (detection 0.9 → 0.45 s at 150 dpi, 8.9 → 0.45 s at 300 dpi).
  A small picture (a 480×270 video frame) is scaled up, as RapidOCR does to a short side of 736,
  so that its boxes stay tight enough to tell a slide's title by its height;
* the recognizer runs the rewritten graph of :mod:`ingest.ocr_graph` (the same arithmetic in fewer
  passes over memory: recognition 1.7× faster, outputs equal to 2e-6);
* boxes are grown a little more (``unclip_ratio`` 2.0, RapidOCR's default 1.6): a taller cut of the
  same line is fewer columns once scaled to the recognizer's 48-pixel height;
* ONNX Runtime's threads never spin-wait for work: on a shared machine a spinning thread burned as
  much CPU as a working one (recognition 6.2 s of CPU per page with spinning, 4.3 without, same
  text).

Splitting a page's lines over ``threads`` workers of one ORT thread each (``workers``) instead of
ORT's intra-op threads was measured too: the same CPU time in one run, 15% more in another, so the
simpler intra-op threads stay.
"""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syllabus_common.errors import ModelNotAvailable

log = logging.getLogger(__name__)


@dataclass
class Box:
    """One recognised piece of text: its corner points in pixels and the engine's confidence."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float


def cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


@dataclass(frozen=True)
class RapidSettings:
    det_max_side: int | None = 1280  # px, the detector's picture (long side); None: RapidOCR's sizing
    unclip_ratio: float = 2.0  # how far a detected line's box is grown (RapidOCR: 1.6)
    fused_graphs: bool = True  # run the models rewritten by ingest.ocr_graph
    workers: bool = False  # recognise a page's lines in `threads` workers of one ORT thread each
    spin: bool = False  # let ORT's threads spin-wait (RapidOCR's default: True)


AS_SHIPPED = RapidSettings(det_max_side=None, unclip_ratio=1.6, fused_graphs=False, workers=False, spin=True)


class RapidOCREngine:
    """PP-OCRv4 detection + recognition, ONNX models from the rapidocr-onnxruntime wheel."""

    name = "rapidocr"

    def __init__(self, languages: tuple[str, ...], threads: int = 0, settings: RapidSettings = RapidSettings()):
        try:
            import rapidocr_onnxruntime
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise ModelNotAvailable("ocr.engine rapidocr needs the package rapidocr-onnxruntime "
                                    "(pip install --no-deps rapidocr-onnxruntime==1.4.4)") from None
        self.settings = settings
        self.threads = threads or os.cpu_count() or 1
        # The angle classifier only matters for upside-down lines; scans and slides are upright.
        # det_limit_side_len: RapidOCR scales the short side up to this; the picture is sized here instead.
        self._ocr = RapidOCR(use_cls=False, intra_op_num_threads=self.threads, inter_op_num_threads=1,
                             det_limit_side_len=32 if settings.det_max_side else 736,
                             det_unclip_ratio=settings.unclip_ratio)
        models = Path(rapidocr_onnxruntime.__file__).parent / "models"
        self._ocr.text_det.infer.session = _session(models / "ch_PP-OCRv4_det_infer.onnx", self.threads, settings)
        rec_threads = 1 if settings.workers else self.threads
        self._ocr.text_rec.session.session = _session(models / "ch_PP-OCRv4_rec_infer.onnx", rec_threads, settings)
        self._ocr.text_rec.postprocess_op = SpacedCTCDecoder(self._ocr.text_rec.postprocess_op.character)
        self._pool = ThreadPoolExecutor(self.threads) if settings.workers and self.threads > 1 else None

    def recognize(self, image: np.ndarray) -> list[Box]:
        """``image``: (H, W, 3) uint8 RGB."""
        import cv2

        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RapidOCR takes OpenCV's BGR
        limit = self.settings.det_max_side
        scale = limit / max(bgr.shape[:2]) if limit else 1.0
        small = bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        found, _ = self._ocr.text_det(small)
        if found is None or not len(found):
            return []
        quads = [np.asarray(q, np.float32) / scale for q in self._ocr.sorted_boxes(found)]  # (4, 2) each
        lines = self._read_lines(self._ocr.get_crop_img_list(bgr, quads))
        return [Box(str(text), float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()),
                    float(score)) for q, (text, score) in zip(quads, lines)]

    def _read_lines(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        rec = self._ocr.text_rec
        if self._pool is None or len(crops) <= rec.rec_batch_num:
            return rec(crops)[0]
        # Batches of similar width (as the recognizer itself sorts them: less padding), spread over workers.
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops])
        batches = [order[i:i + rec.rec_batch_num] for i in range(0, len(order), rec.rec_batch_num)]
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for batch, texts in zip(batches, self._pool.map(lambda b: rec([crops[i] for i in b])[0], batches)):
            for i, text in zip(batch, texts):
                out[i] = text
        return out


def _session(path: Path, threads: int, settings: RapidSettings):
    """An ONNX Runtime CPU session for ``path`` (rewritten by :mod:`ingest.ocr_graph` when set)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not settings.spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model: str | bytes = str(path)
    if settings.fused_graphs:
        from ingest.ocr_graph import fused_model

        try:
            model = fused_model(path)[0]
        except Exception as exc:  # another rapidocr release's graph: slower, not wrong
            log.warning("OCR runs %s as shipped (the faster rewrite failed: %s: %s)", path.name, type(exc).__name__, exc)
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


class SpacedCTCDecoder:
    """Greedy CTC decoding that keeps the spaces PP-OCR's Chinese-first recognizer half-hears.

    On blurred or noisy English lines the recognizer often lets the blank win over the space between
    two words (rapidocr's decoder then prints "Gradientcheckpointing"), but the space class still
    gets a visible share of the probability in the columns between them: 0.05-0.4 at word gaps
    against < 0.01 inside words on our scanned pages. A space goes in where it passes
    :attr:`threshold`, between two non-CJK characters."""

    threshold = 0.03

    def __init__(self, characters: list[str]):
        self.character = characters  # index 0 is CTC's blank, the last one the space
        self.space = len(characters) - 1

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **_) -> list[tuple[str, float]]:
        """``preds``: (N, T, C) per-column class probabilities → [(text, mean confidence)] per line."""
        out = []
        for probs in preds:
            best = probs.argmax(axis=1)  # (T,)
            keep = np.ones(len(best), bool)
            keep[1:] = best[1:] != best[:-1]
            keep &= best != 0
            cols = np.nonzero(keep)[0]
            text = ""
            for j, col in enumerate(cols):
                ch = self.character[best[col]]
                if j and ch != " " and text and text[-1] != " " and not (cjk(ch) or cjk(text[-1])):
                    gap = probs[cols[j - 1] + 1:col, self.space]
                    if gap.size and gap.max() > self.threshold:
                        text += " "
                text += ch
            score = float(probs[cols, best[cols]].mean()) if len(cols) else 0.0
            out.append((text, score))
        return out


class TesseractEngine:
    """Tesseract through PyMuPDF (``Pixmap.pdfocr_tobytes``): needs the tesseract program."""

    name = "tesseract"
    _CODES = {"en": "eng", "zh-TW": "chi_tra", "zh-CN": "chi_sim"}

    def __init__(self, languages: tuple[str, ...], threads: int = 0, settings=None):
        if shutil.which("tesseract") is None:
            raise ModelNotAvailable("ocr.engine tesseract needs the tesseract program "
                                    "(apt-get install tesseract-ocr tesseract-ocr-chi-tra)")
        self.language = "+".join(self._CODES[lang] for lang in languages)

    def recognize(self, image: np.ndarray) -> list[Box]:
        import pymupdf

        h, w = image.shape[:2]
        pix = pymupdf.Pixmap(pymupdf.csRGB, w, h, np.ascontiguousarray(image).tobytes(), False)
        with pymupdf.open("pdf", pix.pdfocr_tobytes(language=self.language)) as doc:
            page = doc[0]
            scale = w / page.rect.width
            return [Box(t, x0 * scale, y0 * scale, x1 * scale, y1 * scale, 1.0)
                    for x0, y0, x1, y1, t, *_ in page.get_text("words")]


ENGINES: dict[str, type] = {"rapidocr": RapidOCREngine, "tesseract": TesseractEngine}
