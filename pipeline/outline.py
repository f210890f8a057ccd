"""A document's text arranged into the units a summary is made of (chapters, sections, page windows).

Text comes from the PDF itself (extracted again: exact pages, headings cut where they start) or, for a
knowledge-base document whose file is gone, from its stored chunks. Units come from the table of
contents at the requested depth; without one, from headings detected by font size; without those,
from fixed page windows. Small units are merged into a neighbour, huge ones split into their
subsections or page windows. Every piece of text belongs to exactly one unit, so the summary's
coverage can be counted page by page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ingest.types import ExtractedDocument, Section, Span
from syllabus_common.errors import SyllabusError

log = logging.getLogger(__name__)


@dataclass
class DocText:
    title: str
    path: str | None
    kind: str  # "pdf" | "media"
    identity: str  # content hash: cache keys stay valid while the text is the same
    labels: dict[int, str]  # physical page → printed label
    n_pages: int
    spans: list[Span]
    sections: list[Section]
    outline_source: str = "toc"  # "toc" | "headings" | "windows" | "time windows" (a recording)

    @property
    def pages_with_text(self) -> set[int]:
        return {s.page for s in self.spans if s.page is not None and s.text.strip()}

    def label(self, page: int | None) -> str:
        return self.labels.get(page, str(page)) if page is not None else ""


@dataclass
class Unit:
    title: str
    level: int
    path: tuple[str, ...]
    page_start: int | None = None
    page_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    spans: list[Span] = field(default_factory=list)

    @property
    def n_pages(self) -> int:
        if self.page_start is None or self.page_end is None:
            return 0
        return self.page_end - self.page_start + 1

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.spans)

    @property
    def pages(self) -> set[int]:
        return {s.page for s in self.spans if s.page is not None}


# ----- loading
def from_document(doc: ExtractedDocument, identity: str) -> DocText:
    """An extracted document (its outline as ingest found it) ready to be cut into units."""
    return DocText(title=doc.title, path=doc.path, kind=doc.kind, identity=identity,
                   labels={p.number: p.label for p in doc.pages}, n_pages=len(doc.pages), spans=doc.spans,
                   sections=doc.sections, outline_source=doc.outline_source)


def from_pdf(path: Path, strip_headers: bool = True, sha256: str | None = None, cache_dir: Path | None = None) -> DocText:
    """A PDF, e-book, slide deck or notes file (:mod:`ingest.formats`); pages without a text layer are
    read by OCR, cached in ``cache_dir`` (default: the user cache)."""
    from ingest.formats import extract_document
    from ingest.hashing import sha256_file
    from syllabus_common.models import user_cache_dir

    doc = extract_document(path, None, cache_dir or user_cache_dir(), strip_headers=strip_headers)
    return from_document(doc, sha256 or sha256_file(path))


def from_file(path: Path, cfg, cache_dir: Path, progress=None, notify=None, sha256: str | None = None) -> DocText:
    """A document or a recording, extracted as the knowledge base would (a recording's transcript from
    ``cache_dir/transcripts``, made now if missing, in ``asr.section_seconds`` windows; OCR from
    ``cache_dir/ocr``)."""
    from ingest.document import extract
    from ingest.hashing import sha256_file

    digest = sha256 or sha256_file(path)  # hashed once: the transcript cache key and the summary identity
    doc = extract(path, cfg, cache_dir, on_stage=progress.stage if progress else None,
                  on_progress=progress.position if progress else None, notify=notify, sha256=digest)
    return from_document(doc, digest)



def from_kb(kb, doc_row) -> DocText:
    """A knowledge-base document: its PDF when still there and unchanged, else its stored chunks."""
    from ingest.hashing import sha256_file

    path = Path(doc_row.path)
    if doc_row.kind != "media" and path.is_file() and sha256_file(path) == doc_row.sha256:
        text = from_pdf(path, kb.cfg.chunking.strip_headers, sha256=doc_row.sha256, cache_dir=kb.path / "cache")
        text.title = doc_row.title
        return text
    stored, sections = kb.stored_text(doc_row.id)
    spans: list[Span] = []
    previous = ""
    for s in stored:
        spans.append(Span(text=_strip_overlap(previous, s.text), section_path=s.section_path, page=s.page,
                          t_start=s.t_start, t_end=s.t_end, kind=s.kind))
        previous = s.text
    return DocText(
        title=doc_row.title, path=doc_row.path, kind=doc_row.kind, identity=doc_row.sha256,
        labels=kb.catalog.page_labels(doc_row.id), n_pages=doc_row.n_pages, spans=spans, sections=sections,
        outline_source=("time windows" if doc_row.kind == "media" else "toc") if sections else "windows",
    )


def _strip_overlap(previous: str, text: str, longest: int = 800) -> str:
    """Chunks overlap by a few sentences; drop the start of ``text`` that repeats the end of ``previous``."""
    for k in range(min(longest, len(previous), len(text)), 19, -1):
        if previous.endswith(text[:k]):
            return text[k:].lstrip()
    return text


# ----- planning
def depth_of(level: str) -> int:
    return {"chapter": 1, "section": 2}.get(level) or int(level)


def plan_units(doc: DocText, depth: int, count: Callable[[str], int], min_tokens: int, max_pages: int,
               window_pages: int) -> list[Unit]:
    if doc.sections:
        units = _toc_units(doc.sections, depth)
        units = _split_huge(units, doc.sections, max_pages, window_pages)
        _assign(doc.spans, units)
    else:
        units = _windows(doc.spans, doc.n_pages, window_pages)
    units = [u for u in units if u.spans or u.page_start is not None]
    units = _merge_small(units, count, min_tokens)
    units = [u for u in units if u.spans]
    if not units:
        raise SyllabusError(f"{doc.title}: no text to summarize")
    return units


def _children(sections: list[Section], index: int) -> list[int]:
    """Indices of the sections nested under ``sections[index]`` (any depth)."""
    level = sections[index].level
    out = []
    for j in range(index + 1, len(sections)):
        if sections[j].level <= level:
            break
        out.append(j)
    return out


def _toc_units(sections: list[Section], depth: int) -> list[Unit]:
    """The outline's leaves once cut at ``depth``: sections at that depth, and shallower ones without
    subsections down to it."""
    units = []
    for i, s in enumerate(sections):
        if s.level > depth:
            continue
        if s.level < depth and any(sections[j].level <= depth for j in _children(sections, i)):
            continue
        units.append(Unit(s.title, s.level, s.path, s.page_start, s.page_end, s.t_start, s.t_end))
    return units


def _split_huge(units: list[Unit], sections: list[Section], max_pages: int, window_pages: int) -> list[Unit]:
    """Units over ``max_pages`` become their subsections (the text before the first one stays a unit of
    its own, usually merged later as small), or page windows when the outline has nothing deeper."""
    out: list[Unit] = []
    by_path = {s.path: i for i, s in enumerate(sections)}
    for u in units:
        if u.n_pages <= max_pages:
            out.append(u)
            continue
        index = by_path.get(u.path)
        kids = [sections[j] for j in _children(sections, index)] if index is not None else []
        if kids:
            top = min(k.level for k in kids)
            out.append(Unit(u.title, u.level, u.path, u.page_start, kids[0].page_start))
            parts = [Unit(k.title, k.level, k.path, k.page_start, k.page_end, k.t_start, k.t_end) for k in kids if k.level == top]
            out.extend(_split_huge(parts, sections, max_pages, window_pages))
            continue
        n = -(-u.n_pages // window_pages)
        for i in range(n):
            start = u.page_start + i * window_pages
            out.append(Unit(f"{u.title} (part {i + 1}/{n})", u.level, u.path + (f"#window{i}",), start,
                            min(u.page_end, start + window_pages - 1)))
    return out


def _assign(spans: list[Span], units: list[Unit]) -> None:
    """Give every span to one unit: the one whose outline path is the longest prefix of the span's (a
    window of its pages when the unit was split into windows); text before the first unit becomes
    "Front matter"; text under no unit goes to the next unit in reading order."""
    by_path: dict[tuple[str, ...], list[Unit]] = {}
    for u in units:
        by_path.setdefault(tuple(p for p in u.path if not p.startswith("#window")), []).append(u)
    front = Unit("Front matter", 1, ())
    pending: list[Span] = []
    started = False
    for span in spans:
        target = None
        for cut in range(len(span.section_path), 0, -1):
            candidates = by_path.get(span.section_path[:cut])
            if candidates:
                target = _by_page(candidates, span.page)
                break
        if target is None:
            if not started:
                front.spans.append(span)
            else:
                pending.append(span)
            continue
        started = True
        target.spans.extend(pending)
        pending = []
        target.spans.append(span)
    if pending:
        units[-1].spans.extend(pending) if units else front.spans.extend(pending)
    if front.spans:
        pages = [s.page for s in front.spans if s.page is not None]
        front.page_start, front.page_end = (min(pages), max(pages)) if pages else (None, None)
        units.insert(0, front)


def _by_page(candidates: list[Unit], page: int | None) -> Unit:
    if len(candidates) == 1 or page is None:
        return candidates[0]
    for u in candidates:
        if u.page_start is not None and u.page_start <= page <= (u.page_end or page):
            return u
    return candidates[-1] if page > (candidates[-1].page_start or 0) else candidates[0]


def _windows(spans: list[Span], n_pages: int, window_pages: int) -> list[Unit]:
    if all(s.page is None for s in spans):  # a transcript without sections: one unit
        return [Unit("Whole document", 1, (), spans=list(spans),
                     t_start=min((s.t_start for s in spans if s.t_start is not None), default=None),
                     t_end=max((s.t_end for s in spans if s.t_end is not None), default=None))]
    units = []
    for start in range(1, n_pages + 1, window_pages):
        end = min(n_pages, start + window_pages - 1)
        units.append(Unit(f"Pages {start}–{end}", 1, (), start, end))
    for span in spans:
        index = min(((span.page or 1) - 1) // window_pages, len(units) - 1)
        units[index].spans.append(span)
    return units


def _merge_small(units: list[Unit], count: Callable[[str], int], min_tokens: int) -> list[Unit]:
    """Merge a section with fewer than ``min_tokens`` tokens of text into a sibling (the next one under
    the same parent, else the previous): a heading and a few lines are not worth a summary of their
    own. Chapters (level 1) and the front matter always keep their own heading."""
    if min_tokens <= 0 or len(units) < 2:
        return units
    out: list[Unit] = []
    carry: Unit | None = None

    def parent(u: Unit) -> tuple[str, ...]:
        return tuple(p for p in u.path if not p.startswith("#window"))[:-1] if u.level > 1 else ("#top",)

    for u in units:
        if carry is not None:
            if u.level > 1 and parent(u) == parent(carry):
                u = _join(carry, u)
            else:
                if out and out[-1].level > 1 and parent(out[-1]) == parent(carry):
                    out[-1] = _join(out[-1], carry)
                else:
                    out.append(carry)
            carry = None
        if u.level > 1 and count(u.text) < min_tokens:
            carry = u
        else:
            out.append(u)
    if carry is not None:
        if out and out[-1].level > 1 and parent(out[-1]) == parent(carry):
            out[-1] = _join(out[-1], carry)
        else:
            out.append(carry)
    return out


def _join(a: Unit, b: Unit) -> Unit:
    starts = [p for p in (a.page_start, b.page_start) if p is not None]
    ends = [p for p in (a.page_end, b.page_end) if p is not None]
    t0 = [t for t in (a.t_start, b.t_start) if t is not None]
    t1 = [t for t in (a.t_end, b.t_end) if t is not None]
    title = a.title if not b.title or b.title == a.title else f"{a.title} / {b.title}"
    return Unit(title, min(a.level, b.level), a.path or b.path, min(starts) if starts else None,
                max(ends) if ends else None, min(t0) if t0 else None, max(t1) if t1 else None, a.spans + b.spans)
