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
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.evidence import encode_all
from pipeline.sentences import Sentence, has_han, split, term_list, terms
from syllabus_common.places import locate
from pipeline.verify import Faithfulness, Verdict, check_sentence, cited_sentences, kept_text

LAMBDA = 0.7  # MMR: weight of relevance against redundancy
MIN_CHARS, MAX_CHARS = 40, 400  # shorter sentences say little; longer ones are lists flattened by extraction
MIN_SHORT = 12  # an index or a glossary has only short lines: they are points there
SALIENT = 20  # the unit's most characteristic terms, which its points should cover
_DEFINITION = re.compile(
    r"\b(?:is|are) (?:a|an|the|called|defined as|known as|used to)\b|\brefers? to\b|\bmeans\b|\bis said to\b|是指|稱為|叫做|定義",
    re.IGNORECASE)
ECHO_OVERLAP = 0.6  # a prose sentence sharing this much of its words with the instructions repeats them
ECHO_WORDS, ECHO_HAN = 3, 5  # a run of the prompt's own wording this long is an echo too


@dataclass
class KeyPoint:
    text: str  # verbatim (whitespace collapsed)
    page: int | None  # physical page holding the sentence
    page_label: str | None
    t_start: float | None  # seconds, for a recording
    score: float = 0.0
    doc_kind: str | None = None  # "pdf", "pptx", "epub", "media", ...: how its places are named
    kind: str | None = None  # the span's kind: None (the document's own text), "ocr", "slide"
    para: int | None = None  # paragraph number, in formats without pages (DOCX, Markdown, HTML, text)

    @property
    def where(self) -> str:
        """``p. 12`` (printed label), ``slide 12``, ``loc. 12`` (a reflowable e-book), ``¶ 7``, ``12:31``
        (see :func:`syllabus_common.places.locate`)."""
        label = self.page_label or (str(self.page) if self.page is not None else None)
        return locate(self.doc_kind, label=label, t_start=self.t_start, chunk_kind=self.kind, para=self.para)

    def as_dict(self) -> dict:
        return dict(asdict(self), where=self.where)


def _candidates(spans, labels: dict[int, str], headings: bool = False, doc_kind: str | None = None
                ) -> tuple[list[KeyPoint], set[str]]:
    """Sentences that may be points (with ``headings``: heading lines too, for an index), and the
    terms of the unit's headings."""
    points, heading_terms, seen = [], set(), set()
    for span, s in _sentences(spans):
        text = span.text
        if s.kind == "heading":
            heading_terms |= terms(s.text)
            if not headings:
                continue
        flat = " ".join(s.text.split())
        if flat in seen:  # a sentence the unit repeats (a running head, a title above its text) is one point
            continue
        seen.add(flat)
        size = len(flat) * (3 if has_han(flat) else 1)  # a Chinese character carries about a word
        if s.kind == "code" or not MIN_SHORT <= size <= MAX_CHARS * 2:
            continue
        t = None
        if span.t_start is not None:
            end = span.t_end if span.t_end is not None else span.t_start
            t = round(span.t_start + (end - span.t_start) * s.start / max(1, len(text)), 1)
        label = labels.get(span.page, str(span.page)) if span.page is not None else None
        points.append(KeyPoint(flat, span.page, label, t, doc_kind=doc_kind, kind=getattr(span, "kind", None),
                               para=getattr(span, "para", None)))
    for span in spans[:1]:
        heading_terms |= terms(" ".join(span.section_path[-1:])) if getattr(span, "section_path", None) else set()
    return points, heading_terms


_ENDED = re.compile(r"[.!?:;…。！？；][\"'’”)\]」』）]*$")  # a sentence that ends here
_GOES_ON = re.compile(r"^[a-z(,;:)\]]")  # a page that starts in the middle of a sentence


def _sentences(spans) -> list[tuple[object, Sentence]]:
    """(span, sentence) in reading order. A sentence cut by a page break (its page ends without an end
    mark and the next page of the same section goes on in lower case) is one sentence, placed on the
    page where it starts: a key point is never half a sentence."""
    per_span = [split(span.text) for span in spans]
    for i in range(len(spans) - 1):
        a, b, here, after = spans[i], spans[i + 1], per_span[i], per_span[i + 1]
        if (here and after and a.page is not None and b.page == a.page + 1
                and getattr(a, "section_path", None) == getattr(b, "section_path", None)
                and here[-1].kind == after[0].kind == "prose"
                and not _ENDED.search(here[-1].text) and _GOES_ON.match(after[0].text)):
            last = here[-1]
            here[-1] = Sentence(f"{last.text} {after[0].text}", last.start, last.end, "prose")
            per_span[i + 1] = after[1:]
    return [(span, s) for span, sents in zip(spans, per_span) for s in sents]


def salience(spans, background: Counter | None = None) -> dict[str, float]:
    """The unit's characteristic terms (stems) with weights in (0, 1]: frequent in the unit and, with
    ``background`` (term counts of the whole document), rarer elsewhere."""
    tf = Counter(t for span in spans for t in term_list(span.text))
    if not tf:
        return {}
    total, bg_total = sum(tf.values()), sum(background.values()) if background else 0
    score = {t: (c / total) / ((background[t] + 1) / (bg_total + 1)) * min(c, 5) if background else c
             for t, c in tf.items() if c >= 2}
    top = sorted(score, key=lambda t: -score[t])[:SALIENT]
    return {t: score[t] / score[top[0]] for t in top} if top else {}


def key_points(spans, embedder, labels: dict[int, str] | None = None, k: int | None = None,
               background: Counter | None = None, doc_kind: str | None = None) -> list[KeyPoint]:
    """The unit's key points in reading order; ``k`` by default grows with the unit's length (3–12);
    ``doc_kind`` names their places (``slide 12`` in a deck, ``loc. 12`` in an e-book)."""
    cands, heading_terms = _candidates(spans, labels or {}, doc_kind=doc_kind)
    if len(cands) < 3:  # an index or a list of titles: its lines are what it says
        cands, heading_terms = _candidates(spans, labels or {}, headings=True, doc_kind=doc_kind)
    full = [c for c in cands if len(c.text) * (3 if has_han(c.text) else 1) >= MIN_CHARS]
    cands = full if len(full) >= 3 else cands
    if not cands:
        return []
    k = k or max(3, min(12, 3 + len(cands) // 15))
    vecs = encode_all(embedder, [c.text for c in cands])
    centre = vecs.mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    relevance = vecs @ centre
    salient = salience(spans, background)
    mass = sum(salient.values()) or 1.0
    for i, c in enumerate(cands):
        bonus = 0.1 if _DEFINITION.search(c.text) else 0.0
        own = terms(c.text)
        if heading_terms and own:
            bonus += 0.1 * len(own & heading_terms) / len(heading_terms)
        bonus += 0.8 * sum(salient.get(t, 0.0) for t in own) / mass
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

    spans = [Span(p.text, (), page=p.page, t_start=p.t_start, t_end=p.t_start, kind=p.kind, para=p.para)
             for p in points]
    labels = {p.page: p.page_label for p in points if p.page is not None and p.page_label}
    return key_points(spans, embedder, labels, k=min(k, len(points)), doc_kind=points[0].doc_kind if points else None)


def points_block(points: list[KeyPoint]) -> str:
    """Numbered points as the model reads them (and as bullets cite them)."""
    return "\n".join(f"[{i}] {p.text}" for i, p in enumerate(points, 1))


def bullets(points: list[KeyPoint]) -> str:
    """Markdown bullets, numbered as the prose cites them ``[n]``, each with its page or mm:ss."""
    return "\n".join(f"- [{i}] {p.text} ({p.where})" if p.where else f"- [{i}] {p.text}"
                     for i, p in enumerate(points, 1))


def _grams(line: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", line.lower())
    return {tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)}


def echoes(sentence: str, instructions: str) -> bool:
    """Whether ``sentence`` repeats the prompt: most of its words are the instructions' words, or it
    holds a run of the instructions' wording (three words with two content words; five Chinese
    characters). ``instructions``: the template's own text, one line per piece between placeholders."""
    own = terms(sentence)
    if own and len(own & terms(instructions)) / len(own) >= ECHO_OVERLAP:
        return True
    fixed = set().union(*(_grams(line) for line in instructions.splitlines())) if instructions else set()
    if any(len(terms(" ".join(g))) >= 2 for g in _grams(sentence) & fixed):
        return True
    han = re.findall(r"[\u3400-\u9fff]{%d,}" % ECHO_HAN, instructions)
    return any(run[i:i + ECHO_HAN] in sentence for run in han for i in range(len(run) - ECHO_HAN + 1))


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
