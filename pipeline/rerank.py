"""Re-ranking after fusion: reorder the top candidates of hybrid search with more evidence.

A re-ranker gets the question and the fused candidates (:class:`pipeline.kb.store.Hit`, best first,
with text, section path and document) and returns one score per candidate; higher is better. The
caller sorts by it. Re-rankers register through :func:`register_reranker`, built-ins included
(like LLM backends): ``retrieval.rerank.method: <name>`` picks one, a test registers a fake the
same way.

Built-ins:

- ``features`` (default): no extra model. Fused rank, plus the question's overlap with the
  candidate's section titles, how many of the question's words occur close together in the passage
  (term proximity), exact matches of the question's code-like tokens (``read.table``,
  ``::``, ``--vanilla``), how much of the fused evidence lies in the candidate's document and
  chapter (a question is usually about one book; near-duplicate passages of sibling books have
  little company in the candidate list), minus a table-of-contents/index look (dot leaders).
- ``cross-encoder``: a sentence-transformers CrossEncoder from a local folder or the HF cache.
- ``llm``: ``features``, then the configured local LLM's query likelihood, log P(question |
  passage), for its first passages (``pipeline.rerank_models``).
- ``none``: keep the fused order.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

from pipeline.rerank_base import Reranker, fused_scores
from syllabus_common.registry import Registry


# Feature → weight of the ``features`` re-ranker (config: retrieval.rerank.weights). Each feature is
# in [0, 1] and adds weight × value to the fused score scaled so the first candidate has 1; ``nav``
# subtracts (a table of contents or an index names a subject without explaining it).
FEATURES = ("dense", "bm25", "title", "code", "doc", "doccos", "section", "nav", "near")
SIGN = {"nav": -1.0}
# Chosen on the library setting by eval/rerank_tune.py (eval/results/rerank_tune.md); config.yaml too.
# ``near`` was added last, by the same rule with the other weights fixed (two-fold cross-validated there).
DEFAULT_WEIGHTS = {"dense": 0.5, "bm25": 0.5, "title": 0.3, "code": 0.0, "doc": 0.0, "doccos": 0.0, "section": 0.4,
                   "nav": 0.6, "near": 0.5}
# Term proximity: the window, in indexed words (stop words left out), about one sentence of prose.
NEAR_WINDOW = 25


class NoRerank(Reranker):
    name = "none"

    def scores(self, query: str, hits: Sequence) -> list[float]:
        return [-float(i) for i in range(len(hits))]


class FeatureReranker(Reranker):
    """Fused rank + section-title overlap + code-token matches + document and chapter evidence."""

    name = "features"

    def __init__(self, weights: dict[str, float] | None = None, stemmer: str = "english"):
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.stemmer = stemmer

    def features(self, query: str, hits: Sequence) -> list[dict[str, float]]:
        """Each candidate's features, all in [0, 1]."""
        from pipeline.kb.tokens import query_code_tokens

        words = _words(query, self.stemmer)
        code = query_code_tokens(query)
        base = fused_scores(hits)  # the fused (RRF) score, best = 1
        dense = _minmax([getattr(h, "dense_score", None) for h in hits])
        bm25 = _minmax([getattr(h, "bm25_score", None) for h in hits])
        doccos = _minmax([getattr(h, "doc_score", None) for h in hits])
        total = sum(base) or 1.0
        doc_mass: dict[int, float] = {}
        sec_mass: dict[tuple[int, str], float] = {}
        for b, h in zip(base, hits):
            doc_mass[h.doc_id] = doc_mass.get(h.doc_id, 0.0) + b
            key = (h.doc_id, _chapter(h.section))
            sec_mass[key] = sec_mass.get(key, 0.0) + b
        out = []
        for b, h in zip(base, hits):
            title = _title_tokens(h.section, self.stemmer)
            text = h.text.lower()
            out.append({
                "base": b,
                "dense": dense[len(out)],
                "bm25": bm25[len(out)],
                "doccos": doccos[len(out)],
                "title": len(words & title) / len(words) if words else 0.0,
                "code": sum(t in text for t in code) / len(code) if code else 0.0,
                "doc": doc_mass[h.doc_id] / total,
                "section": sec_mass[(h.doc_id, _chapter(h.section))] / total,
                "nav": _navigation(h.text),
                "near": _near(words, _passage_tokens(h.text, self.stemmer)),
            })
        return out

    def scores(self, query: str, hits: Sequence) -> list[float]:
        w = {f: SIGN.get(f, 1.0) * v for f, v in self.weights.items()}
        return [f["base"] + sum(w[name] * f[name] for name in FEATURES) for f in self.features(query, hits)]


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


@lru_cache(maxsize=4096)
def _title_tokens(section_path: str, stemmer: str) -> frozenset[str]:
    """A section path's stemmed words (paths repeat across candidates and questions: cached)."""
    from pipeline.kb.lexical import tokenize

    return frozenset(tokenize(section_path, stemmer)) if section_path else frozenset()


@lru_cache(maxsize=2048)
def _passage_tokens(text: str, stemmer: str) -> tuple[str, ...]:
    """A passage's indexed words in order (cached: a session's questions keep meeting the same
    passages, and tokenizing is most of the proximity feature's cost)."""
    from pipeline.kb.lexical import tokenize

    return tuple(tokenize(text, stemmer, code=False))


def _minmax(values: list[float | None]) -> list[float]:
    """Scores scaled to [0, 1] over the candidates (missing: 0), for a convex combination of the
    retrievers' scores beside rank fusion (Bruch, Gai & Ingber, ACM TOIS 2023)."""
    known = [v for v in values if v is not None]
    if not known:
        return [0.0] * len(values)
    low, span = min(known), (max(known) - min(known)) or 1.0
    return [0.0 if v is None else (v - low) / span for v in values]


def _near(words: set[str], tokens: Sequence[str], window: int = NEAR_WINDOW) -> float:
    """The largest share of the question's ``words`` that occur together within ``window``
    consecutive tokens of the passage, in [0, 1].

    Term proximity (Büttcher, Clarke & Lushman, SIGIR 2006; Tao & Zhai, SIGIR 2007): a passage
    that answers a question tends to say its words in one sentence; a passage that only mentions
    them scatters them. BM25 and the embedding score the whole passage and cannot tell the two apart."""
    if not words:
        return 0.0
    found = [(i, t) for i, t in enumerate(tokens) if t in words]
    best, inside, first = 0, {}, 0
    for pos, term in found:
        inside[term] = inside.get(term, 0) + 1
        while pos - found[first][0] >= window:
            old = found[first][1]
            inside[old] -= 1
            if not inside[old]:
                del inside[old]
            first += 1
        best = max(best, len(inside))
    return best / len(words)


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
_RERANKERS = Registry("re-ranker", "retrieval.rerank.method")


def register_reranker(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``retrieval.rerank.method: <name>`` re-rank through ``factory(cfg)``."""
    _RERANKERS.register(name, factory, replace=replace)


unregister_reranker = _RERANKERS.unregister
available_rerankers = _RERANKERS.names


def load_reranker(cfg, method: str | None = None) -> Reranker:
    """The re-ranker ``method`` (default: the config's ``retrieval.rerank.method``)."""
    return _RERANKERS.create(method or cfg.retrieval.rerank.method, cfg)


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
    return FeatureReranker(cfg.retrieval.rerank.weights, cfg.retrieval.stemmer)


def _cross_encoder(cfg) -> Reranker:
    from pipeline.rerank_models import CrossEncoderReranker

    return CrossEncoderReranker.from_config(cfg)


def _llm(cfg) -> Reranker:
    from pipeline.rerank_models import LLMReranker

    return LLMReranker.from_config(cfg, _features(cfg))


register_reranker("none", lambda cfg: NoRerank())
register_reranker("features", _features)
register_reranker("cross-encoder", _cross_encoder)
register_reranker("llm", _llm)
