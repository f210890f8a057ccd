"""Evidence: the sentences of the retrieved passages that answer the question, verbatim, cited.

Each passage (a retrieved chunk: document, printed page label and physical page, or t_start/t_end
for a transcript) is cut into sentences (:mod:`pipeline.sentences`); a prose sentence that
introduces a code line ("use the R command" + ``> x <- c(...)``) keeps that line. Every sentence is
scored against the question:

- cosine of the sentence and question embeddings (one batched encode of all of them);
- lexical overlap: the question's stemmed terms, numbers and identifiers found in the sentence,
  weighted by how rare each is among the candidates (a term every sentence has says nothing);
- a small prior for the passage's retrieval rank;
- optionally a re-ranker (a cross-encoder, or the LLM when it is able): ``rerank(question, texts)``
  returning one score in [0, 1] per text, blended in.

The top sentences are returned verbatim with their citation. A sentence's page is the passage's page
when the passage lies on one page; for a passage across pages, ``locate`` (for PDFs:
:class:`PdfPageLocator`) finds the page that holds the sentence. A transcript sentence's time is
interpolated within its passage's time range by its position in the text.
"""

from __future__ import annotations

import inspect
import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from pipeline.sentences import Sentence, split, terms
from syllabus_common import places

WEIGHTS = {"cosine": 0.55, "lexical": 0.45, "rank": 0.05, "rerank": 0.5}  # rerank replaces that share when used
MIN_CHARS = 12  # a shorter unit ("Note:", "Examples") is no evidence
MAX_UNIT_CHARS = 400  # a sentence with its code lines stays shorter than this
_ENDED = re.compile(r"[.!?。！？]$")
DUPLICATE_COSINE = 0.95  # a candidate this close to a chosen one is a repeat (chunks overlap)


@dataclass
class Passage:
    """A retrieved chunk with its provenance (numbered as the answer cites it)."""

    n: int
    doc: str  # title
    path: str
    text: str
    section: str = ""
    page: int | None = None  # physical, 1-based
    page_end: int | None = None
    page_label: str | None = None
    page_label_end: str | None = None
    t_start: float | None = None
    t_end: float | None = None
    kind: str | None = None  # the document's format (pdf, pptx, md, ...): how its places are named
    chunk_kind: str | None = None  # "ocr", "slide" or None
    para_start: int | None = None  # paragraph numbers, in formats without pages
    para_end: int | None = None

    @classmethod
    def from_hit(cls, hit, n: int) -> "Passage":
        return cls(n=n, doc=hit.title, path=hit.path, text=hit.text, section=hit.section, page=hit.page_start,
                   page_end=hit.page_end, page_label=hit.page_label, page_label_end=hit.page_label_end,
                   t_start=hit.t_start, t_end=hit.t_end, kind=hit.kind, chunk_kind=hit.chunk_kind,
                   para_start=hit.para_start, para_end=hit.para_end)


    @classmethod
    def from_citation(cls, c) -> "Passage":
        """From an :class:`pipeline.ask.Citation` (a passage numbered as the answer cites it)."""
        t_start = t_end = None
        if c.time:
            ends = [_seconds(x) for x in re.split(r"\s*[–-]\s*", c.time) if x.strip()]
            t_start, t_end = ends[0], ends[-1]
        return cls(n=c.n, doc=c.doc, path=c.path, text=c.text, section=c.section, page=c.page, page_end=c.page_end,
                   page_label=c.page_label, page_label_end=c.page_label_end, t_start=t_start, t_end=t_end,
                   kind=c.doc_kind or None, chunk_kind=c.chunk_kind, para_start=c.para_start, para_end=c.para_end)


def _seconds(clock: str) -> float:
    """``mm:ss`` or ``h:mm:ss`` → seconds."""
    total = 0.0
    for part in clock.strip().split(":"):
        total = total * 60 + float(part)
    return total


@dataclass
class Evidence:
    n: int  # evidence number, as the model and the reader cite it
    text: str  # verbatim from the passage
    passage: int  # the passage's number
    doc: str
    path: str
    section: str
    page: int | None
    page_end: int | None
    page_label: str | None
    t_start: float | None
    t_end: float | None
    score: float
    cosine: float
    lexical: float
    kind: str | None = None  # the document's format, chunk kind and paragraphs: see Passage
    chunk_kind: str | None = None
    para_start: int | None = None
    para_end: int | None = None

    @property
    def where(self) -> str:
        single = self.page_end in (None, self.page)
        return places.locate(self.kind, self.page, None if single else self.page_end, self.page_label, None, self.t_start,
                      self.t_end, self.chunk_kind, self.para_start, self.para_end)

    @property
    def citation(self) -> str:
        return f"{self.doc}, {self.where}" if self.where else self.doc

    def as_dict(self) -> dict:
        return dict(asdict(self), where=self.where, citation=self.citation)


def units(text: str) -> list[Sentence]:
    """Evidence units of a passage: sentences; a code line joins the sentence that runs into it
    ("use the command" + ``> x <- c(...)``) and the lower-case words that finish that sentence
    after it ("will divert all output ...")."""
    out: list[Sentence] = []
    for s in split(text):
        prev = out[-1] if out else None
        join = prev is not None and s.end - prev.start <= MAX_UNIT_CHARS and (
            (s.kind == "code" and prev.kind != "heading" and (prev.kind in ("code", "intro") or not _ENDED.search(prev.text)))
            or (s.kind == "prose" and prev.kind in ("code", "intro") and s.text[:1].islower()))
        if join:
            out[-1] = Sentence(text[prev.start : s.end].strip(), prev.start, s.end, "intro")
        else:
            out.append(s)
    return [u for u in out if len(u.text) >= MIN_CHARS or u.kind == "code"]


# Sentences per forward pass. The embedder sorts texts by length, so small batches pad little: one
# batch of the 30 sentences of a cold `ask` (the longest 680 characters) took 1.6 CPU s on ONNX
# Runtime, batches of 4 took 0.23-0.45 s (2-core Xeon with AMX, measured under load).
EVIDENCE_BATCH = 4


def encode_all(embedder, texts: list[str]) -> np.ndarray:
    """Unit vectors of ``texts`` (a few dozen sentences, in small length-sorted batches)."""
    if "batch_size" in inspect.signature(embedder.encode).parameters:
        return np.asarray(embedder.encode(texts, batch_size=EVIDENCE_BATCH), dtype=np.float32)
    return np.asarray(embedder.encode(texts), dtype=np.float32)


def _weights(candidate_terms: list[set[str]]) -> dict[str, float]:
    df: dict[str, int] = {}
    for ts in candidate_terms:
        for t in ts:
            df[t] = df.get(t, 0) + 1
    n = len(candidate_terms)
    return {t: math.log(1 + n / (1 + c)) for t, c in df.items()}


def lexical_scores(question: str, texts: list[str]) -> list[float]:
    """Share of the question's term weight found in each text (identifiers and numbers count double)."""
    q = terms(question)
    cand = [terms(t) for t in texts]
    w = _weights(cand)
    default = math.log(1 + len(texts))

    def weight(t: str) -> float:
        boost = 2.0 if re.search(r"[\d.()_$]", t) or t == "??" else 1.0
        return boost * w.get(t, default)

    total = sum(weight(t) for t in q) or 1.0
    return [sum(weight(t) for t in q & c) / total for c in cand]


class PdfPageLocator:
    """The physical page (and its label) that holds a sentence of a passage spanning pages."""

    def __call__(self, passage: Passage, sentence: str) -> tuple[int, str] | None:
        if passage.page is None or passage.page_end in (None, passage.page) or not passage.path.lower().endswith(".pdf"):
            return None
        key = squash(sentence)[:60]
        for page in range(passage.page, passage.page_end + 1):
            text, label = _page_text(passage.path, page)
            if key and key in text:
                return page, label
        return None


def squash(text: str) -> str:
    """Letters and digits only (ligatures unfolded): how a sentence is found in a page's text."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


@lru_cache(maxsize=64)
def _page_text(path: str, page: int) -> tuple[str, str]:
    try:
        import pymupdf

        with pymupdf.open(path) as doc:
            p = doc[page - 1]
            return squash(p.get_text()), p.get_label() or str(page)
    except Exception:  # the file moved or changed since ingest: keep the passage's range
        return "", str(page)


def _place(p: Passage, u: Sentence, locate) -> dict:
    """Page or time of one unit of a passage."""
    if p.t_start is not None and p.t_end is not None and p.text:
        at = lambda offset: round(p.t_start + offset / max(1, len(p.text)) * (p.t_end - p.t_start), 1)  # noqa: E731
        return {"page": None, "page_end": None, "page_label": None, "t_start": at(u.start), "t_end": at(u.end)}
    if p.page is not None and p.page_end not in (None, p.page):
        found = locate(p, u.text) if locate else None
        if found:
            return {"page": found[0], "page_end": found[0], "page_label": found[1], "t_start": None, "t_end": None}
    return {"page": p.page, "page_end": p.page_end, "page_label": p.page_label, "t_start": p.t_start, "t_end": p.t_end}


def select(question: str, passages: list[Passage], embedder, top: int = 3,
           rerank: Callable[[str, list[str]], list[float]] | None = None,
           locate: Callable[[Passage, str], tuple[int, str] | None] | None = None,
           question_vector: np.ndarray | None = None) -> list[Evidence]:
    """The ``top`` evidence sentences for ``question`` from ``passages`` (given best first).
    ``question_vector``: the question's unit embedding when the caller has it (not encoded again)."""
    cands: list[tuple[Passage, int, Sentence]] = []
    seen: set[str] = set()
    for rank, p in enumerate(passages):
        for u in units(p.text):
            key = " ".join(u.text.split()).lower()
            if key not in seen:
                seen.add(key)
                cands.append((p, rank, u))
    if not cands:
        return []
    texts = [" ".join(u.text.split()) for _, _, u in cands]
    if question_vector is None:
        vecs = encode_all(embedder, [question] + texts)
    else:
        vecs = np.vstack([np.asarray(question_vector, np.float32).reshape(1, -1), encode_all(embedder, texts)])
    cos = vecs[1:] @ vecs[0]
    lex = lexical_scores(question, texts)
    score = np.array([WEIGHTS["cosine"] * c + WEIGHTS["lexical"] * x + WEIGHTS["rank"] / (1 + r)
                      for c, x, (_, r, _) in zip(cos, lex, cands)])
    for i, (_, _, u) in enumerate(cands):
        if u.kind == "heading":
            score[i] *= 0.5  # a heading names the topic but states nothing
    if rerank is not None:
        order = np.argsort(-score)[: max(3 * top, 10)]
        extra = rerank(question, [texts[i] for i in order])
        for i, s in zip(order, extra):
            score[i] = (1 - WEIGHTS["rerank"]) * score[i] + WEIGHTS["rerank"] * float(s)
    chosen: list[int] = []
    for i in np.argsort(-score):
        if len(chosen) >= top:
            break
        if any(float(vecs[1 + i] @ vecs[1 + j]) > DUPLICATE_COSINE for j in chosen):
            continue
        chosen.append(int(i))
    out = []
    for k, i in enumerate(chosen):
        p, _, u = cands[i]
        out.append(Evidence(n=k + 1, text=u.text, passage=p.n, doc=p.doc, path=p.path, section=p.section,
                            score=round(float(score[i]), 4), cosine=round(float(cos[i]), 4), lexical=round(lex[i], 4),
                            kind=p.kind, chunk_kind=p.chunk_kind, para_start=p.para_start, para_end=p.para_end,
                            **_place(p, u, locate)))
    return out


def evidence_block(evidence: list[Evidence], cite: bool = True) -> str:
    """The evidence as printed, ``[n] sentence — doc, p. 3``; as given to the model (``cite=False``)
    without the citation, which a small model would copy into its sentences."""
    return "\n".join(f"[{e.n}] {' '.join(e.text.split())}" + (f" — {e.citation}" if cite else "") for e in evidence)
