"""Text clean-up for extracted pages: running heads/feet and hyphenation breaks."""

from __future__ import annotations

import re
from collections import Counter

# A word broken at a line end: "estim-\nate" (lowercase on both sides, so "GPU-\nMemory" stays).
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]{2}")
_LEADER = re.compile(r"(\. ?){4}")  # dot leaders: a table-of-contents entry, not a head
_EDGE_LINES = 2  # lines looked at on each page's top and bottom


def _shape(line: str) -> str:
    """A line with its numbers masked, so "Page 3 of 9" and "Page 4 of 9" count as one header."""
    return _DIGITS.sub("#", line.strip().lower())


def _edge_indices(lines: list[str]) -> list[int]:
    """Indices of the non-blank lines at the top and bottom of a page."""
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    return nonblank[:_EDGE_LINES] + nonblank[-_EDGE_LINES:]


def _edges(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i] for i in _edge_indices(lines)]


def _carries_number(line: str, number: str) -> bool:
    """The line starts or ends with the page's own printed number ("Chapter 6: Lists 32", "33")."""
    tokens = line.split()
    return bool(number) and bool(tokens) and (tokens[0] == number or tokens[-1] == number)


def _edge_slots(text: str, number: str) -> list[tuple[str, int, int, str]]:
    """(edge, the line's place, the folio's place, the line) for each edge line set beside a line that
    is just the page's number on the same edge: a head set as "Chapter 2: Spreadsheet-like data" with
    its folio "10" on a line of its own (texinfo manuals, as PyMuPDF reads them)."""
    lines = text.splitlines()
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    out = []
    for name, edge in (("top", nonblank[:_EDGE_LINES]), ("bottom", nonblank[-_EDGE_LINES:])):
        folios = [j for j, i in enumerate(edge) if lines[i].strip() == number]
        out += [(name, j, folios[0], lines[i]) for j, i in enumerate(edge) if folios and j not in folios]
    return out


def _numbered_edges(text: str, number: str) -> list[str]:
    """Edge lines that carry the page's number, or stand next to a line that is just the number, on
    the same edge (see :func:`_edge_slots`)."""
    lines = text.splitlines()
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    carrying = [lines[i] for edge in (nonblank[:_EDGE_LINES], nonblank[-_EDGE_LINES:]) for i in edge
                if _carries_number(lines[i], number)]
    return carrying + [line for *_, line in _edge_slots(text, number)]


def _first_word(shape: str) -> str:
    return shape.split(maxsplit=1)[0] if shape.strip() else ""


def _slot_heads(texted: list[tuple[int, str]], labels: list[str], heads: set[str], min_pages: int) -> dict[int, set[str]]:
    """Heads of short chapters, per page: once the book shows confirmed heads beside their folio in
    one place (top edge, head then folio, say) on ``min_pages`` pages, a line in that place beside the
    folio that opens like one of them ("Chapter #: ...", "Appendix ...") is that page's head, though
    its chapter spans too few pages to repeat it. A contents entry (dot leaders) is not."""
    found = [(i, slot) for i, text in texted if labels[i] for slot in _edge_slots(text, labels[i])]
    confirmed = [(slot[:3], _shape(slot[3])) for _, slot in found
                 if _shape(slot[3]) in heads and _WORD.search(_shape(slot[3]))]  # a head has words
    places = Counter(place for place, _ in confirmed)
    openings = {(place, _first_word(shape)) for place, shape in confirmed if places[place] >= min_pages}
    out: dict[int, set[str]] = {}
    for i, slot in found:
        shape = _shape(slot[3])
        if shape not in heads and (slot[:3], _first_word(shape)) in openings and not _LEADER.search(shape):
            out.setdefault(i, set()).add(slot[3])
    return out


def repeated_edge_lines(pages: list[str], labels: list[str] | None = None, min_share: float = 0.5,
                        min_pages: int = 3) -> tuple[set[str], dict[int, set[str]]]:
    """Running heads and feet among the lines at the top and bottom of the pages: the shapes of
    those of the whole book, and the lines of single pages.

    Shapes: a line on at least ``min_share`` of the pages (a book title on every page), and a line
    carrying the page's own number, or set beside it, seen on at least ``min_pages`` pages (a chapter
    title with the page number, which changes per chapter and so never reaches the share). Lines of
    single pages: a short chapter's head (see :func:`_slot_heads`), by page index.
    """
    texted = [(i, p) for i, p in enumerate(pages) if p.strip()]
    if len(texted) < min_pages:
        return set(), {}
    counts: Counter[str] = Counter()
    numbered: Counter[str] = Counter()
    for i, text in texted:
        edges = _edges(text)
        counts.update({_shape(ln) for ln in edges})
        if labels is not None:
            numbered.update({_shape(ln) for ln in _numbered_edges(text, labels[i])} if labels[i] else set())
    need = max(min_pages, int(min_share * len(texted) + 0.999))
    shapes = {shape for shape, n in counts.items() if n >= need and shape}
    heads = {shape for shape, n in numbered.items() if n >= min_pages and shape}
    single = _slot_heads(texted, labels, heads, min_pages) if labels is not None else {}
    return shapes | heads, single


def strip_edge_lines(text: str, shapes: set[str], label: str | None = None, lines_of_page: set[str] = frozenset()) -> str:
    lines = text.splitlines()
    edge = set(_edge_indices(lines))

    def running(i: int, ln: str) -> bool:
        return i in edge and (_shape(ln) in shapes or ln in lines_of_page or (label is not None and ln.strip() == label))

    return "\n".join(ln for i, ln in enumerate(lines) if not running(i, ln))


def join_hyphenation(text: str) -> str:
    return _HYPHEN_BREAK.sub("", text)


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00ad", "")  # soft hyphens
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_pages(pages: list[str], labels: list[str] | None = None, strip_headers: bool = True) -> list[str]:
    """Clean every page of one document; header detection needs all pages at once.

    ``labels`` are the printed page numbers; a line holding just the page's number is a folio.
    """
    normalized = [normalize_whitespace(p) for p in pages]
    if not strip_headers:
        return [join_hyphenation(p).strip() for p in normalized]
    shapes, single = repeated_edge_lines(normalized, labels)
    return [
        join_hyphenation(strip_edge_lines(p, shapes, labels[i] if labels else None, single.get(i, set()))).strip()
        for i, p in enumerate(normalized)
    ]
