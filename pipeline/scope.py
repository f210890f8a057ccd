"""Which knowledge-base documents a question names ("in R-data", "according to the R Language Definition").

A question that names a document is about that document: searching only there keeps a sibling
book's near-duplicate passages out of the answer. A document is named by

- its file name without extension, written as in the file name ("R-data", "r-intro.pdf"): such a
  name has punctuation or capitals that ordinary prose does not produce by chance; or
- its title, at least two words long, right after a cue ("in", "from", "according to", "see",
  "the", quotes), so a title made of common words ("R Internals") inside a sentence about
  something else does not scope by accident.

The naming words are removed from the query, so they don't pull in passages that merely mention
the document's title.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

_CUE = r"(?:\b(?:in|from|of|per|according\s+to|see|within|inside)\s+(?:the\s+)?|[\"'“‘])"
_ARTICLES = ("the ", "an ", "a ")


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _title_variants(title: str) -> list[str]:
    base = _norm(title)
    out = [base]
    for art in _ARTICLES:
        if base.startswith(art):
            out.append(base[len(art):])
    return [v for v in out if len(v.split()) >= 2]


def _stem_pattern(stem: str) -> re.Pattern | None:
    """The file name as a whole token (optionally with .pdf); None when it is one plain word."""
    if re.fullmatch(r"[A-Za-z]+", stem) or len(stem) < 3:
        return None
    return re.compile(rf"(?<![\w.-]){re.escape(stem)}(?:\.\w{{2,4}})?(?![\w-])", re.IGNORECASE)


def named_documents(question: str, documents: Sequence) -> tuple[list, str]:
    """The documents the question names, and the question without the naming words.

    ``documents``: rows with ``path`` and ``title``. Returns ([], question) when none is named."""
    named, spans = [], []
    for doc in documents:
        found = _find(question, doc)
        if found is not None:
            named.append(doc)
            spans.append(found)
    if not named:
        return [], question
    rest = question
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    rest = re.sub(r"\s+", " ", re.sub(r"\(\s*\)|\[\s*\]", " ", rest)).strip(" ,;:")
    rest = re.sub(r"\s+([?.!,;:])", r"\1", rest)
    return named, rest


def _find(question: str, doc) -> tuple[int, int] | None:
    """The span of ``question`` that names ``doc`` (cue included), or None."""
    pattern = _stem_pattern(Path(doc.path).stem)
    if pattern is not None:
        m = pattern.search(question)
        if m:
            return _with_cue(question, m.start(), m.end())
    titles = [doc.title or ""] + list(getattr(doc, "aliases", ()))
    for variant in (v for t in titles for v in _title_variants(t)):
        words = r"[^a-z0-9]+".join(re.escape(w) for w in variant.split())
        m = re.search(rf"{_CUE}({words})\b[\"'”’]?", question, re.IGNORECASE)
        if m:
            return m.start(), m.end()
    return None


def _with_cue(question: str, start: int, end: int) -> tuple[int, int]:
    """Extend a name's span to a cue right before it ("in R-data" → the whole phrase)."""
    m = re.search(rf"{_CUE}$", question[:start], re.IGNORECASE)
    return (m.start() if m else start), end


def title_page_names(catalog) -> dict[int, str]:
    """Each document's first line of text on its first page, when it reads like a title (2–10 words).

    Many PDFs carry no title in their metadata (the title is then the file name), but their title
    page names them: "R Language Definition", "An Introduction to R"."""
    names = {}
    rows = catalog.db.execute("SELECT doc_id, text FROM chunks WHERE ord = 0 AND page_start = 1").fetchall()
    for doc_id, text in rows:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if 2 <= len(first.split()) <= 10 and re.search(r"[A-Za-z]{2}", first):
            names[doc_id] = first
    return names
