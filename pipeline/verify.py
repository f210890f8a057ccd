"""Deterministic check of generated text against the evidence it cites.

Each sentence of an answer (or a summary's prose) is split off with the ``[n]`` markers it carries,
and its claims are read: numbers with their units (:mod:`pipeline.quantities`), technical terms and
names (identifiers, acronyms, capitalised words inside the sentence), and its content words. The
sentence is *supported* when the evidence it cites holds every claim, allowing for formatting
(16–24 / 16 to 24, sixteen / 16, GB / gigabytes, 1,000 / 1000, percent / %), and shares most of its
content words. A sentence citing nothing, or citing evidence that does not hold it, is unsupported.

Chinese: numbers and Latin terms are compared across scripts (a Traditional Chinese sentence can
cite an English page by its numbers and terms); Chinese text on both sides is compared as
Traditional (OpenCC) character bigrams.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from pipeline.quantities import quantities, unsupported
from pipeline.sentences import has_han, is_identifier, split, stem, terms, tokens

_MARKER = re.compile(r"\s*(?:\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]|【(\d{1,3})】)")
MIN_OVERLAP = 0.5  # share of a sentence's content words that its evidence must hold
_NEGATION = re.compile(r"\b(?:not|never|no|cannot|can't|won't|doesn't|don't|isn't|aren't|without)\b|不|沒有|無法|未", re.IGNORECASE)
# Capitalised words that are not names when they stand inside a sentence.
_COMMON_CAPS = {"i", "the", "a", "an", "this", "it", "in", "on", "for", "to", "and", "or", "yes", "no", "note"}


@dataclass
class Verdict:
    text: str  # the sentence without its markers
    cited: list[int]  # evidence numbers the sentence cites
    supported: bool
    matched: int | None  # the cited evidence that holds the most of it
    reason: str  # why not supported ("" when supported)
    claims: list[str] = field(default_factory=list)  # numbers and terms that were checked

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Faithfulness:
    """Claims checked and dropped; adds up across answers or a whole summary."""

    checked: int = 0
    dropped: int = 0

    def add(self, verdicts: list[Verdict]) -> "Faithfulness":
        self.checked += len(verdicts)
        self.dropped += sum(not v.supported for v in verdicts)
        return self

    def __iadd__(self, other: "Faithfulness") -> "Faithfulness":
        self.checked += other.checked
        self.dropped += other.dropped
        return self

    @property
    def line(self) -> str:
        return f"claims checked: {self.checked}, unsupported dropped: {self.dropped}"


def to_traditional(text: str) -> str:
    """Chinese text in Traditional script (OpenCC, as transcripts are converted); unchanged without it."""
    if not has_han(text):
        return text
    try:
        from ingest.asr.zh import convert_text

        return convert_text(text, "tw")
    except ImportError:
        return text


def strip_markers(text: str) -> str:
    """``text`` without its citation markers ([1], [2, 3], 【1】)."""
    return _MARKER.sub("", text)


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of generated text with the evidence numbers each cites, markers removed.

    A marker that opens a sentence ("... GB. [1] Next") belongs to the sentence before it.
    """
    out: list[tuple[str, list[int]]] = []
    for s in split(text):
        body = s.text
        lead = re.match(rf"(?:{_MARKER.pattern})+", body)
        if lead and out:
            out[-1][1].extend(_numbers(lead.group(0)))
            body = body[lead.end():]
        cited = _numbers(body)
        clean = _MARKER.sub("", body).strip()
        clean = re.sub(r"\s+([.,;:!?。，；！？])", r"\1", clean)
        if re.search(r"\w", clean):
            out.append((clean, cited))
        elif out:
            out[-1][1].extend(cited)
    return out


def _numbers(text: str) -> list[int]:
    found = []
    for m in _MARKER.finditer(text):
        group = m.group(1) or m.group(2)
        found += [int(x) for x in re.split(r"\s*[,;]\s*", group)]
    return found


def term_claims(sentence: str) -> list[str]:
    """Technical terms and names a sentence asserts: identifiers, acronyms, inner capitalised words,
    quoted code; every Latin word of a Chinese sentence."""
    chinese = has_han(sentence)
    claims = [m.group(1) for m in re.finditer(r"[`\"“]([^`\"”]{1,40})[`\"”]", sentence) if not has_han(m.group(1))]
    words = tokens(sentence)
    for i, tok in enumerate(words):
        if has_han(tok) or tok[0].isdigit():
            continue
        if chinese and (len(tok) > 1 or tok == "R"):
            claims.append(tok)
        elif is_identifier(tok):
            claims.append(tok)
        elif i > 0 and tok[0].isupper() and tok.lower() not in _COMMON_CAPS and len(tok) > 1:
            claims.append(tok)
    return list(dict.fromkeys(claims))


def _holds_term(term: str, evidence: str, evidence_tokens: set[str]) -> bool:
    t = term.lower().rstrip("()")
    if t in evidence_tokens or stem(t) in evidence_tokens:
        return True
    return t in evidence.lower()  # multi-word quoted terms, code fragments


def check_sentence(sentence: str, cited: list[int], evidence: dict[int, str]) -> Verdict:
    """The verdict for one sentence citing ``cited`` among ``evidence`` (number → text)."""
    nums = quantities(sentence)
    named = term_claims(sentence)
    claims = [q.text for q in nums] + named
    usable = [n for n in dict.fromkeys(cited) if n in evidence]
    if not cited:
        return Verdict(sentence, [], False, None, "cites nothing", claims)
    if not usable:
        return Verdict(sentence, cited, False, None, f"cites [{', '.join(map(str, cited))}], which is not evidence", claims)
    texts = {n: to_traditional(evidence[n]) for n in usable}
    union = " ".join(texts.values())
    missing = [q.text for q in unsupported(nums, union)]
    union_tokens = {t.lower().rstrip(".") for t in tokens(union)} | {stem(t) for t in tokens(union)}
    missing += [t for t in named if not _holds_term(t, union, union_tokens)]
    best = max(usable, key=lambda n: len(terms(sentence) & terms(texts[n])))
    if missing:
        return Verdict(sentence, cited, False, best, "not in the cited evidence: " + ", ".join(missing), claims)
    own = terms(to_traditional(sentence)) - {t.lower() for t in named}
    cross_script = has_han(sentence) and not has_han(union)
    if cross_script:
        if not claims:
            return Verdict(sentence, cited, False, best, "nothing checkable against evidence in another script", claims)
    elif own:
        overlap = len(own & terms(union)) / len(own)
        if overlap < MIN_OVERLAP:
            return Verdict(sentence, cited, False, best, f"shares {overlap:.0%} of its words with the cited evidence", claims)
    if _NEGATION.search(sentence) and not _NEGATION.search(union):
        return Verdict(sentence, cited, False, best, "negates what the cited evidence says", claims)
    return Verdict(sentence, cited, True, best, "", claims)


def verify(text: str, evidence: dict[int, str]) -> list[Verdict]:
    """Verdicts for every sentence of ``text``; ``evidence`` maps each citable number to its text."""
    return [check_sentence(s, cited, evidence) for s, cited in cited_sentences(text)]


def kept_text(verdicts: list[Verdict], show_unsupported: bool = False, mark: str = "[unsupported]") -> str:
    """The supported sentences with their markers; unsupported ones dropped, or kept and marked."""
    out = []
    for v in verdicts:
        refs = "".join(f" [{n}]" for n in dict.fromkeys(v.cited))
        if v.supported:
            out.append(_with_refs(v.text, refs))
        elif show_unsupported:
            out.append(f"{mark} {_with_refs(v.text, refs)}")
    return " ".join(out)


def _with_refs(text: str, refs: str) -> str:
    m = re.search(r"[.!?。！？]$", text)
    return f"{text[:-1]}{refs}{text[-1]}" if m and refs else text + refs
