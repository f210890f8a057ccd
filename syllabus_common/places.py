"""One way to name a place in a document: printed page label (with the physical page when the two
differ) or a time range in a recording; and in the words of other formats (:func:`located`):
``p. 12, OCR`` for a page read by OCR, ``slide 12`` in a deck, ``loc. 12`` in a reflowable e-book (a
layout location, not a printed page), ``slide, 12:30–14:05`` for a slide shown in a lecture video."""

from __future__ import annotations

from syllabus_common.timefmt import span as time_span


def place(page: int | None = None, page_end: int | None = None, label: str | None = None,
          label_end: str | None = None, t_start: float | None = None, t_end: float | None = None) -> str:
    """``p. 12``, ``pp. 12–19``, ``p. iv (pdf p. 4)``, ``12:31–13:05``, or "" when nothing is known.

    ``page``/``page_end`` are physical pages (1-based), ``label``/``label_end`` the printed labels;
    either may be missing (a summary knows labels only)."""
    if page is not None or label:
        first = label or str(page)
        last = label_end or (str(page_end) if page_end is not None else "")
        single = last in ("", first) and page_end in (None, page)
        out = f"p. {first}" if single else f"pp. {first}–{last}"
        if page is not None and first != str(page):
            out += f" (pdf p. {page})"
        return out
    if t_start is not None:
        return time_span(t_start, t_end)
    return ""


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
