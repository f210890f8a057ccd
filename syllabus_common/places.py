"""One way to name a place in a document, in the words of its format (:func:`locate`):

* PDF (and XPS, CBZ): printed page label, with the physical page when the two differ: ``p. 12``,
  ``pp. 12–19``, ``p. iv (pdf p. 4)``, ``pp. iv–ix (pdf pp. 4–9)``; ``p. 12, OCR`` for a page read by OCR;
* reflowable e-books (EPUB, MOBI, FB2): ``loc. 12`` — a page of PyMuPDF's layout of the book, not
  of a printed edition;
* slide decks (PPTX): ``slide 12``, ``slides 3–5``;
* recordings: ``12:31–13:05``; a slide shown in a lecture video: ``slide, 12:30–14:05``;
* notes without pages (DOCX, Markdown, HTML, plain text): ``¶ 7`` or ``¶ 7–9``, the paragraphs'
  numbers counted from the top of the file (body paragraphs, list items, tables and code blocks;
  headings are not counted), beside the section path that search hits and citations show.
"""

from __future__ import annotations

from syllabus_common.timefmt import span as time_span

REFLOWABLE = frozenset({"epub", "mobi", "fb2"})  # page numbers are PyMuPDF layout locations
PARAGRAPHED = frozenset({"docx", "md", "html", "txt"})  # no pages: paragraph numbers
PAGED_AS = {"pptx": ("slide", "slides")}


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
        if page is not None and first != str(page):  # the physical pages too, the whole range
            out += f" (pdf p. {page})" if page_end in (None, page) else f" (pdf pp. {page}–{page_end})"
        return out
    if t_start is not None:
        return time_span(t_start, t_end)
    return ""


def _numbered(one: str, many: str, first, last) -> str:
    return f"{one} {first}" if last in (None, "", first) else f"{many} {first}–{last}"


def locate(kind: str | None, page: int | None = None, page_end: int | None = None, label: str | None = None,
           label_end: str | None = None, t_start: float | None = None, t_end: float | None = None,
           chunk_kind: str | None = None, para: int | None = None, para_end: int | None = None) -> str:
    """A place in a document of ``kind`` (``pdf``, ``epub``, ``pptx``, ``media``, ``md``, … as stored in
    the catalog), from whatever is known of it: physical pages and/or printed labels, a time range
    in seconds, paragraph numbers. ``chunk_kind``: ``ocr`` or ``slide`` for text read from a picture.
    "" when nothing is known."""
    if chunk_kind == "slide" and t_start is not None:
        return f"slide, {time_span(t_start, t_end)}"
    first = page if page is not None else label
    last = page_end if page is not None else label_end
    if kind in PAGED_AS and first not in (None, ""):
        out = _numbered(*PAGED_AS[kind], first, last)
    elif kind in REFLOWABLE and first not in (None, ""):
        out = _numbered("loc.", "loc.", first, last)
    elif kind in PARAGRAPHED and para is not None:
        out = _numbered("¶", "¶", para, para_end)
    else:
        out = place(page, page_end, label, label_end, t_start, t_end)
    if chunk_kind == "ocr":
        out = f"{out}, OCR" if out else "OCR"
    return out


def located(place_text: str, doc_kind: str | None, chunk_kind: str | None, page: int | None = None,
            page_end: int | None = None, t_start: float | None = None, t_end: float | None = None) -> str:
    """:func:`locate` for a caller that already has the PDF or recording wording (``place_text``)."""
    if doc_kind in PAGED_AS or doc_kind in REFLOWABLE or chunk_kind == "slide":
        return locate(doc_kind, page, page_end, t_start=t_start, t_end=t_end, chunk_kind=chunk_kind)
    if chunk_kind == "ocr":
        return f"{place_text}, OCR" if place_text else "OCR"
    return place_text


def extent(kind: str | None, n_pages: int, n_paras: int = 0) -> str:
    """A document's length in the units its places are given in: ``12 pages``, ``9 slides``,
    ``48 loc.``, ``23 ¶``; "" for a recording (no pages) or when unknown."""
    if kind in PARAGRAPHED:
        return f"{n_paras} ¶" if n_paras else ""
    if not n_pages:
        return ""
    if kind in PAGED_AS:
        return f"{n_pages} {PAGED_AS[kind][1] if n_pages > 1 else PAGED_AS[kind][0]}"
    if kind in REFLOWABLE:
        return f"{n_pages} loc."
    return f"{n_pages} page{'s' if n_pages > 1 else ''}"
