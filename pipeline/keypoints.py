"""Key points of a chapter (or a lecture's time window): its own sentences, each with its page or time.

Per unit, the sentences of its text (:mod:`pipeline.sentences`; headings and code lines are not
points) are embedded in one batch and chosen by maximal marginal relevance (Carbonell & Goldstein
1998): relevance to the unit as a whole (cosine to the mean sentence vector), plus a bonus for a
definition ("X is a ...", "is called", "是指") and for sharing words with the unit's headings; minus
the similarity to the points already chosen, so the points cover the unit instead of repeating its
main idea. Chosen points are returned in reading order, verbatim, each with the page it is on (or
its mm:ss).

The model may rewrite the points as prose (``prompts/<lang>/key_points.txt``); :func:`checked_prose`
keeps only the sentences the verifier finds in the points they cite, or, citing none, in the unit's
text; sentences that repeat the prompt's instructions are dropped too. The points always remain.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.evidence import encode_all
from pipeline.sentences import has_han, split, terms
from pipeline.timefmt import clock
from pipeline.verify import Faithfulness, Verdict, check_sentence, cited_sentences, kept_text

LAMBDA = 0.7  # MMR: weight of relevance against redundancy
MIN_CHARS, MAX_CHARS = 40, 400  # shorter sentences say little; longer ones are lists flattened by extraction
_DEFINITION = re.compile(
    r"\b(?:is|are) (?:a|an|the|called|defined as|known as|used to)\b|\brefers? to\b|\bmeans\b|\bis said to\b|是指|稱為|叫做|定義",
    re.IGNORECASE)
ECHO_OVERLAP = 0.6  # a prose sentence sharing this much of its words with the instructions repeats them


@dataclass
class KeyPoint:
    text: str  # verbatim (whitespace collapsed)
    page: int | None  # physical page holding the sentence
    page_label: str | None
    t_start: float | None  # seconds, for a recording
    score: float = 0.0

    @property
    def where(self) -> str:
        if self.page is not None:
            return f"p. {self.page_label or self.page}"
        return clock(self.t_start) if self.t_start is not None else ""

    def as_dict(self) -> dict:
        return dict(asdict(self), where=self.where)


def _candidates(spans, labels: dict[int, str]) -> tuple[list[KeyPoint], set[str]]:
    points, heading_terms = [], set()
    for span in spans:
        text = span.text
        for s in split(text):
            if s.kind == "heading":
                heading_terms |= terms(s.text)
                continue
            flat = " ".join(s.text.split())
            size = len(flat) * (3 if has_han(flat) else 1)  # a Chinese character carries about a word
            if s.kind == "code" or not MIN_CHARS <= size <= MAX_CHARS * 2:
                continue
            t = None
            if span.t_start is not None:
                end = span.t_end if span.t_end is not None else span.t_start
                t = round(span.t_start + (end - span.t_start) * s.start / max(1, len(text)), 1)
            label = labels.get(span.page, str(span.page)) if span.page is not None else None
            points.append(KeyPoint(flat, span.page, label, t))
    for span in spans[:1]:
        heading_terms |= terms(" ".join(span.section_path[-1:])) if getattr(span, "section_path", None) else set()
    return points, heading_terms


def key_points(spans, embedder, labels: dict[int, str] | None = None, k: int | None = None) -> list[KeyPoint]:
    """The unit's key points in reading order; ``k`` by default grows with the unit's length (3–8)."""
    cands, heading_terms = _candidates(spans, labels or {})
    if not cands:
        return []
    k = k or max(3, min(8, 2 + len(cands) // 25))
    vecs = encode_all(embedder, [c.text for c in cands])
    centre = vecs.mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    relevance = vecs @ centre
    for i, c in enumerate(cands):
        bonus = 0.1 if _DEFINITION.search(c.text) else 0.0
        own = terms(c.text)
        if heading_terms and own:
            bonus += 0.1 * len(own & heading_terms) / len(heading_terms)
        if len(c.text) > MAX_CHARS and not has_han(c.text):
            bonus -= 0.1
        relevance[i] += bonus
    chosen: list[int] = []
    while len(chosen) < min(k, len(cands)):
        redundancy = np.max(vecs @ vecs[chosen].T, axis=1) if chosen else np.zeros(len(cands))
        mmr = LAMBDA * relevance - (1 - LAMBDA) * redundancy
        mmr[chosen] = -np.inf
        chosen.append(int(np.argmax(mmr)))
    for i in chosen:
        cands[i].score = round(float(relevance[i]), 4)
    return [cands[i] for i in sorted(chosen)]


def overview_points(points: list[KeyPoint], embedder, k: int = 8) -> list[KeyPoint]:
    """The whole document's key points, chosen the same way from its units' key points."""
    from ingest.types import Span

    spans = [Span(p.text, (), page=p.page, t_start=p.t_start, t_end=p.t_start) for p in points]
    labels = {p.page: p.page_label for p in points if p.page is not None and p.page_label}
    return key_points(spans, embedder, labels, k=min(k, len(points)))


def points_block(points: list[KeyPoint]) -> str:
    """Numbered points as the model reads them (and as bullets cite them)."""
    return "\n".join(f"[{i}] {p.text}" for i, p in enumerate(points, 1))


def bullets(points: list[KeyPoint]) -> str:
    """Markdown bullets, each with its page or mm:ss."""
    return "\n".join(f"- {p.text} ({p.where})" if p.where else f"- {p.text}" for p in points)


def echoes(sentence: str, instructions: str) -> bool:
    own = terms(sentence)
    return bool(own) and len(own & terms(instructions)) / len(own) >= ECHO_OVERLAP


def checked_prose(prose: str, points: list[KeyPoint], unit_text: str, instructions: str = "",
                  faithfulness: Faithfulness | None = None) -> tuple[str, list[Verdict]]:
    """The prose sentences that hold up: checked against the points they cite, or against the unit's
    text when they cite none; a sentence repeating the instructions is dropped. Counts into
    ``faithfulness``."""
    evidence = {i: p.text for i, p in enumerate(points, 1)}
    evidence[0] = unit_text
    verdicts = []
    for sentence, cited in cited_sentences(prose):
        if instructions and echoes(sentence, instructions):
            verdicts.append(Verdict(sentence, cited, False, None, "repeats the prompt's instructions"))
            continue
        v = check_sentence(sentence, cited or [0], evidence)
        v.cited = cited
        verdicts.append(v)
    if faithfulness is not None:
        faithfulness.add(verdicts)
    return kept_text(verdicts), verdicts
