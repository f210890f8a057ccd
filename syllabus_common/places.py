"""One way to name a place in a document: printed page label (with the physical page when the two
differ) or a time range in a recording."""

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
