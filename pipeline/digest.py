"""Summaries with provenance: per unit, key points (its own sentences with pages or mm:ss) and,
when the model is able, prose written from those points and checked sentence by sentence.

:func:`digest_unit` and :func:`digest_overview` are what the summarizer calls per chapter (or
time window) and for the whole document; ``write(messages) -> str | None`` is the summarizer's
cached model call (None from it: the prompt does not fit the context; ``write`` None: no prose,
the key points are the summary). Every prose sentence is verified
(:func:`pipeline.keypoints.checked_prose`): against the points it cites, or the unit's text when it
cites none; unsupported sentences and echoes of the prompt are dropped and counted in the
faithfulness line. The bullets always remain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from pipeline.keypoints import KeyPoint, bullets, checked_prose, key_points, overview_points, points_block
from pipeline.prompting import PLACEHOLDER
from pipeline.sentences import term_list
from pipeline.verify import Faithfulness, Verdict, strip_markers

@dataclass
class Digest:
    points: list[KeyPoint]
    prose: str = ""  # verified sentences only, citing the points as [n]
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What the summary states: the verified prose and the points, without their page marks."""
        return "\n".join([strip_markers(self.prose)] + [p.text for p in self.points]).strip()

    @property
    def markdown(self) -> str:
        """The numbered key-point bullets with their places, then the verified prose."""
        parts = [bullets(self.points)] if self.points else []
        if self.prose:
            parts.append(self.prose)
        return "\n\n".join(parts)

    def as_dict(self) -> dict:
        return {"prose": self.prose, "points": [p.as_dict() for p in self.points],
                "verdicts": [v.as_dict() for v in self.verdicts]}


def template_text(prompts, language: str) -> str:
    """The key-point template's own wording, one line per piece between its placeholders: what the
    model must never repeat back."""
    t = prompts.get("key_points", language)
    return PLACEHOLDER.sub("\n", f"{t.system}\n{t.user}")


def _prose(points: list[KeyPoint], source_text: str, prompts, language: str, write: Callable | None,
           faithfulness: Faithfulness, **values: str) -> tuple[str, list[Verdict]]:
    """Prose from the longest prefix of ``points`` whose prompt fits, checked sentence by sentence."""
    if write is None or not points:
        return "", []
    for n in range(len(points), 0, -1):
        text = write(prompts.render("key_points", language, points=points_block(points[:n]), **values))
        if text is not None:
            return checked_prose(text, points[:n], source_text, template_text(prompts, language), faithfulness)
    return "", []


def document_terms(doc) -> Counter:
    """Term counts of the whole document: what makes a unit's terms characteristic of it."""
    return Counter(t for span in doc.spans for t in term_list(span.text))


def digest_unit(unit, doc, embedder, prompts=None, language: str = "en", write: Callable | None = None,
                faithfulness: Faithfulness | None = None, k: int | None = None, background: Counter | None = None,
                **values: str) -> Digest:
    """Key points of ``unit`` (an :class:`pipeline.outline.Unit` of ``doc``) and verified prose;
    ``background``: :func:`document_terms` of ``doc`` (computed once per document by the caller);
    ``values``: the prompt's placeholders (title, pages, kind, parts)."""
    points = key_points(unit.spans, embedder, doc.labels, k=k, background=background, doc_kind=doc.kind)
    prose, verdicts = _prose(points, unit.text, prompts, language, write,
                             faithfulness if faithfulness is not None else Faithfulness(), **values)
    return Digest(points, prose, verdicts)


def digest_overview(units: list[Digest], embedder, prompts=None, language: str = "en", write: Callable | None = None,
                    faithfulness: Faithfulness | None = None, k: int = 8, **values: str) -> Digest:
    """The whole document's key points, chosen from its units' points, and verified prose on them
    (checked against every unit's points: the overview states nothing the chapters did not)."""
    everything = [p for d in units for p in d.points]
    if not everything:
        return Digest([])
    points = overview_points(everything, embedder, k=k)
    source = "\n".join(p.text for p in everything)
    prose, verdicts = _prose(points, source, prompts, language, write,
                             faithfulness if faithfulness is not None else Faithfulness(), **values)
    return Digest(points, prose, verdicts)
