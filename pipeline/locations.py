"""Where a passage is, in the words of its format: ``p. 12, OCR`` for a page read by OCR, ``slide 12``
in a deck, ``loc. 12`` in a reflowable e-book (a layout location, not a printed page) and
``slide, 12:30–14:05`` for a slide shown in a lecture video."""

from __future__ import annotations

from pipeline.timefmt import span as time_span

REFLOWABLE = frozenset({"epub", "mobi", "fb2"})  # page numbers are PyMuPDF layout locations
PAGED_AS = {"pptx": ("slide", "slides")}


def located(place: str, doc_kind: str | None, chunk_kind: str | None, page: int | None = None,
            page_end: int | None = None, t_start: float | None = None, t_end: float | None = None) -> str:
    """``place``: the page or time text already made for a PDF or a recording."""
    if chunk_kind == "slide" and t_start is not None:
        return f"slide, {time_span(t_start, t_end)}"
    out = place
    if page is not None and (doc_kind in PAGED_AS or doc_kind in REFLOWABLE):
        one, many = PAGED_AS.get(doc_kind, ("loc.", "loc."))
        out = f"{one} {page}" if page_end in (None, page) else f"{many} {page}–{page_end}"
    if chunk_kind == "ocr":
        out = f"{out}, OCR" if out else "OCR"
    return out
