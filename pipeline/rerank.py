"""Re-ranking after fusion: reorder the top candidates of hybrid search with more evidence.

A re-ranker gets the question and the fused candidates (:class:`pipeline.kb.store.Hit`, best first,
with text, section path and document) and returns one score per candidate; higher is better. The
caller sorts by it. Re-rankers register through :func:`register_reranker`, built-ins included
(like LLM backends): ``retrieval.rerank.method: <name>`` picks one, a test registers a fake the
same way.

Built-ins:

- ``features`` (default): no extra model. Fused rank, plus the question's overlap with the
  candidate's section titles, exact matches of the question's code-like tokens (``read.table``,
  ``::``, ``--vanilla``), how much of the fused evidence lies in the candidate's document and
  chapter (a question is usually about one book; near-duplicate passages of sibling books have
  little company in the candidate list), minus a table-of-contents/index look (dot leaders).
- ``cross-encoder``: a sentence-transformers CrossEncoder from a local folder or the HF cache.
- ``llm``: the configured LLM rates each passage (``pipeline.rerank_llm``).
- ``none``: keep the fused order.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Weights:
    """How much each feature of the ``features`` re-ranker adds to the normalised fused score."""

    title: float = 0.3
    code: float = 0.3
    doc: float = 0.3
    section: float = 0.2
    nav: float = 0.3


class Reranker(ABC):
    """Scores candidates for a question; ``name`` appears in logs and benchmarks."""

    name: str = "reranker"

    @abstractmethod
    def scores(self, query: str, hits: Sequence) -> list[float]:
        """One score per hit, same order as ``hits`` (which arrive in fused order, best first)."""


class NoRerank(Reranker):
    name = "none"

    def scores(self, query: str, hits: Sequence) -> list[float]:
        return [-float(i) for i in range(len(hits))]


class FeatureReranker(Reranker):
    """Fused rank + section-title overlap + code-token matches + document and chapter evidence."""

    name = "features"

    def __init__(self, weights: Weights = Weights(), stemmer: str = "english"):
        self.weights = weights
        self.stemmer = stemmer

    def features(self, query: str, hits: Sequence) -> list[dict[str, float]]:
        """Each candidate's features, all in [0, 1]."""
        from pipeline.kb.lexical import tokenize
        from pipeline.kb.tokens import query_code_tokens

        words = _words(query, self.stemmer)
        code = query_code_tokens(query)
        top = max((h.score for h in hits), default=0.0) or 1.0
        base = [max(h.score, 0.0) / top for h in hits]  # the fused (RRF) score, best = 1
        total = sum(base) or 1.0
        doc_mass: dict[int, float] = {}
        sec_mass: dict[tuple[int, str], float] = {}
        for b, h in zip(base, hits):
            doc_mass[h.doc_id] = doc_mass.get(h.doc_id, 0.0) + b
            key = (h.doc_id, _chapter(h.section))
            sec_mass[key] = sec_mass.get(key, 0.0) + b
        out = []
        for b, h in zip(base, hits):
            title = set(tokenize(h.section, self.stemmer)) if h.section else set()
            text = h.text.lower()
            out.append({
                "base": b,
                "title": len(words & title) / len(words) if words else 0.0,
                "code": sum(t in text for t in code) / len(code) if code else 0.0,
                "doc": doc_mass[h.doc_id] / total,
                "section": sec_mass[(h.doc_id, _chapter(h.section))] / total,
                "nav": _navigation(h.text),
            })
        return out

    def scores(self, query: str, hits: Sequence) -> list[float]:
        w = self.weights
        return [f["base"] + w.title * f["title"] + w.code * f["code"] + w.doc * f["doc"] + w.section * f["section"]
                - w.nav * f["nav"] for f in self.features(query, hits)]


# How questions are phrased, not what they are about (BM25's stop list keeps most of these).
_QUESTION_WORDS = frozenset(
    "what which who whom whose why how when where whether do does did done can could should would will "
    "shall may might must i me my we our you your is are was were be been being there here way ways use "
    "using used get make want need tell find say said".split()
)
_LEADER = re.compile(r"(?:\. ?){4,}")  # dot leaders of a table of contents or an index


def _words(text: str, stemmer: str) -> set[str]:
    """The question's stemmed content words (no stop words, question words or code tokens)."""
    from pipeline.kb.lexical import tokenize
    from pipeline.kb.tokens import code_tokens

    plain = " ".join(w for w in re.findall(r"[^\W_]+", text.lower()) if w not in _QUESTION_WORDS)
    code = set(code_tokens(text))
    return {t for t in tokenize(plain, stemmer) if t not in code}


def _navigation(text: str) -> float:
    """How much a passage looks like a table of contents or an index (dot leaders), in [0, 1].

    Such pages list a subject's name and page without explaining it; they match a question's words
    well and answer it badly."""
    lines = [ln for ln in text.splitlines() if ln.strip()] or [text]
    return min(1.0, 2.0 * len(_LEADER.findall(text)) / max(len(lines), 1))


def _chapter(section_path: str) -> str:
    """The top-level part of a section path ("Chapter › Section" → "Chapter")."""
    from pipeline.kb.catalog import PATH_SEP

    return section_path.split(PATH_SEP, 1)[0] if section_path else ""


# ----- registry

Factory = Callable[..., Reranker]  # factory(cfg: Config) -> Reranker
_RERANKERS: dict[str, Factory] = {}


def register_reranker(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``retrieval.rerank.method: <name>`` re-rank through ``factory(cfg)``."""
    if name in _RERANKERS and not replace:
        raise ValueError(f"re-ranker {name!r} is already registered")
    _RERANKERS[name] = factory


def unregister_reranker(name: str) -> None:
    _RERANKERS.pop(name, None)


def available_rerankers() -> list[str]:
    return sorted(_RERANKERS)


def load_reranker(cfg, method: str | None = None) -> Reranker:
    """The re-ranker ``method`` (default: the config's ``retrieval.rerank.method``)."""
    method = method or cfg.retrieval.rerank.method
    factory = _RERANKERS.get(method)
    if factory is None:
        raise ConfigError(f"unknown retrieval.rerank.method {method!r}; valid: {', '.join(available_rerankers())}")
    return factory(cfg)


def rerank(reranker: Reranker, query: str, hits: list) -> list:
    """``hits`` sorted by the re-ranker's scores (ties keep the fused order), each with its
    ``rerank_score``; ``score`` stays the fused score."""
    if not hits:
        return hits
    scores = reranker.scores(query, hits)
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    for i in order:
        hits[i].rerank_score = float(scores[i])
    return [hits[i] for i in order]


def _features(cfg) -> Reranker:
    w = cfg.retrieval.rerank
    return FeatureReranker(Weights(w.title, w.code, w.doc, w.section, w.nav), cfg.retrieval.stemmer)


def _cross_encoder(cfg) -> Reranker:
    from pipeline.rerank_models import CrossEncoderReranker

    return CrossEncoderReranker.from_config(cfg)


def _llm(cfg) -> Reranker:
    from pipeline.rerank_models import LLMReranker

    return LLMReranker.from_config(cfg)


register_reranker("none", lambda cfg: NoRerank())
register_reranker("features", _features)
register_reranker("cross-encoder", _cross_encoder)
register_reranker("llm", _llm)
