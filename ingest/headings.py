"""An outline for a PDF without one: headings told apart from body text by their font size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def detect_headings(path: Path, max_level: int = 3) -> list[list]:
    """Outline entries ``[level, title, page]`` from lines set in a larger font than the body text.

    Body size = the font size carrying most characters. A heading: a short line (3-80 characters, not
    ending in a full stop) at least 15% larger than the body. Sizes rank into levels, largest first; a
    size used only once above all others is the title. Returns [] when nothing stands out, or when
    "headings" are so frequent they are probably not."""
    import pymupdf

    lines: list[tuple[int, float, str]] = []
    sizes: Counter[float] = Counter()
    with pymupdf.open(path) as doc:
        n_pages = doc.page_count
        for page in doc:
            for block in page.get_text("dict").get("blocks", []):
                for line in block.get("lines", []):
                    text = "".join(s.get("text", "") for s in line.get("spans", [])).strip()
                    if not text:
                        continue
                    size = round(max(s.get("size", 0) for s in line["spans"]), 1)
                    sizes[size] += len(text)
                    lines.append((page.number + 1, size, text))
    if not sizes:
        return []
    body = sizes.most_common(1)[0][0]
    found = [(p, s, t) for p, s, t in lines if s >= body * 1.15 and 3 <= len(t) <= 80 and not t.endswith(".")
             and sum(c.isalpha() for c in t) >= 2]
    if not found or len(found) > 3 * n_pages:
        return []
    per_size = Counter(s for _, s, _ in found)
    repeated = [s for s, n in per_size.items() if n >= 2]
    if repeated:  # a size used once, above every repeated one, is the book's title, not a heading level
        found = [(p, s, t) for p, s, t in found if not (per_size[s] == 1 and s > max(repeated))]
    else:
        return []  # a single large line (a title page) is not an outline
    ranks = sorted({s for _, s, _ in found}, reverse=True)[:max_level]
    return [[ranks.index(s) + 1, t, p] for p, s, t in found if s in ranks]
