"""Text clean-up for extracted pages: running heads/feet and hyphenation breaks."""

from __future__ import annotations

import re
from collections import Counter

# A word broken at a line end: "estim-\nate" (lowercase on both sides, so "GPU-\nMemory" stays).
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_DIGITS = re.compile(r"\d+")
_EDGE_LINES = 2  # lines looked at on each page's top and bottom


def _shape(line: str) -> str:
    """A line with its numbers masked, so "Page 3 of 9" and "Page 4 of 9" count as one header."""
    return _DIGITS.sub("#", line.strip().lower())


def repeated_edge_lines(pages: list[str], min_share: float = 0.5, min_pages: int = 3) -> set[str]:
    """Shapes of lines found at the top or bottom of at least ``min_share`` of the pages."""
    texted = [p for p in pages if p.strip()]
    if len(texted) < min_pages:
        return set()
    counts: Counter[str] = Counter()
    for text in texted:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        edges = lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]
        counts.update({_shape(ln) for ln in edges})
    need = max(min_pages, int(min_share * len(texted) + 0.999))
    # A bare page number masks to "#": always a footer candidate, never body text on its own line.
    return {shape for shape, n in counts.items() if n >= need and shape}


def strip_edge_lines(text: str, shapes: set[str]) -> str:
    if not shapes:
        return text
    lines = text.splitlines()
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    edge = set(nonblank[:_EDGE_LINES] + nonblank[-_EDGE_LINES:])
    kept = [ln for i, ln in enumerate(lines) if not (i in edge and _shape(ln) in shapes)]
    return "\n".join(kept)


def join_hyphenation(text: str) -> str:
    return _HYPHEN_BREAK.sub("", text)


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00ad", "")  # soft hyphens
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_pages(pages: list[str], strip_headers: bool = True) -> list[str]:
    """Clean every page of one document; header detection needs all pages at once."""
    normalized = [normalize_whitespace(p) for p in pages]
    shapes = repeated_edge_lines(normalized) if strip_headers else set()
    return [join_hyphenation(strip_edge_lines(p, shapes)).strip() for p in normalized]
