"""Search a knowledge base: scope, retrieve (dense, BM25), fuse (RRF), re-rank, diversify.

    question ─ scope (``--doc`` or a document the question names) ─┬─ dense (FAISS) ──────────────┐
                                                                    └─ BM25 (bm25s) of the question ┴─ RRF ─ top
                                                                       (+ the LLM's answer: ``retrieval.expand``)
    ``rerank.depth`` ─ re-ranker (``pipeline.rerank``) ─ per-document cap when scores are close ─ k
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np

from syllabus_common.errors import KnowledgeBaseError, SyllabusError

log = logging.getLogger(__name__)


def search(kb, query: str, k: int | None = None, fusion: str | None = None, docs: list[str] | None = None,
           rerank: str | None = None, query_vector=None, lexical_query: str | None = None,
           expand: str | None = None) -> list:
    """The ``k`` best passages for ``query`` (:class:`pipeline.kb.store.Hit`, best first).

    ``fusion``: rrf (default), dense or bm25; re-ranking applies to rrf only. ``rerank`` names a
    registered re-ranker (default: the config's), ``"none"`` keeps the fused order. ``query_vector``:
    the query's embedding when the caller has it already (or of an expanded query); ``lexical_query``:
    what BM25 matches instead of the query; ``expand`` names a registered query expander (default:
    the config's; see :mod:`pipeline.expand`): BM25 then matches the query and the expander's text
    (and the dense search embeds both, with ``retrieval.expand.dense``). The re-ranker reads the
    query alone."""
    query = query.strip()
    if not query:
        raise SyllabusError("empty query")
    r = kb.cfg.retrieval
    k = k or r.k
    fusion = fusion or r.fusion
    kb._check_embed_model()
    dense, lexical = kb.load_indexes()
    original = query
    doc_ids, query = _scope(kb, query, docs)  # a named document leaves the query: embed what is left
    allowed_ids = kb.catalog.chunk_ids_for_docs(doc_ids) if doc_ids is not None else None
    method = rerank or r.rerank.method
    reranking = fusion == "rrf" and method != "none"
    depth = max(r.rerank.depth, k) if reranking else k
    n = max(r.candidates, depth)
    dense_hits: list[tuple[int, float]] = []
    bm25_hits: list[tuple[int, float]] = []
    qvec = None
    if query != original:
        query_vector = None  # the caller embedded the whole question
    if lexical_query is None and (expand or r.expand.method) != "none":
        extra = _expander(kb, expand or r.expand.method).expand(query)
        lexical_query = " ".join([query, extra])
        if extra and r.expand.dense and fusion in ("rrf", "dense"):
            query_vector = kb.embed_query(lexical_query)
    if fusion in ("rrf", "dense"):
        qvec = kb.embed_query(query) if query_vector is None else query_vector
    if qvec is not None:
        dense_hits = dense.search(qvec, n, allowed_ids)
    if fusion in ("rrf", "bm25"):
        mask = np.isin(lexical.ids, allowed_ids) if allowed_ids is not None else None
        bm25_hits = lexical.search(lexical_query or query, n, mask)
    dense_rank = {cid: i + 1 for i, (cid, _) in enumerate(dense_hits)}
    bm25_rank = {cid: i + 1 for i, (cid, _) in enumerate(bm25_hits)}
    if fusion == "rrf":
        scores = rrf([dense_hits, bm25_hits], r.rrf_k)
    else:
        scores = dict(dense_hits if fusion == "dense" else bm25_hits)
    top = sorted(scores, key=lambda cid: (-scores[cid], cid))[:depth]
    hits = kb._hits(top, scores, dense_rank, bm25_rank)
    dense_score, bm25_score = dict(dense_hits), dict(bm25_hits)
    doc_cos = _document_similarity(kb, qvec) if qvec is not None and fusion == "rrf" else {}
    for h in hits:
        h.dense_score, h.bm25_score = dense_score.get(h.chunk_id), bm25_score.get(h.chunk_id)
        h.doc_score = doc_cos.get(h.doc_id)
    if not reranking:
        return hits[:k]
    from pipeline.rerank import rerank as apply

    hits = apply(_reranker(kb, method), query, hits)
    hits = diversify(hits, k, r.diversify.max_per_doc, r.diversify.margin, r.diversify.max_per_page)
    return hits[:k]


def _reranker(kb, method: str):
    """One re-ranker per KB object and method (a cross-encoder or LLM loads once; the ``llm``
    re-ranker reads with the model the ``llm`` expander already loaded, if it did)."""
    from pipeline.rerank import load_reranker

    cache = kb.__dict__.setdefault("_rerankers", {})
    if method not in cache:
        if method == "llm":
            share_llm(kb, _loaded_llm(kb))  # builds it on a model already loaded here, if any
        if method not in cache:  # nothing loaded yet, or a server backend (refused by the registry)
            cache[method] = load_reranker(kb.cfg, method)
    return cache[method]


def _expander(kb, method: str):
    """One query expander per KB object and method; expansions are cached in the KB's ``cache/``.
    The ``llm`` expander writes with the model already loaded for this KB object (to answer, or
    by the ``llm`` re-ranker): one copy of the model, however many stages use it."""
    from pipeline.expand import load_expander

    cache = kb.__dict__.setdefault("_expanders", {})
    if method not in cache:
        cache[method] = load_expander(kb.cfg, method, llm=_loaded_llm(kb), cache=_expansion_cache(kb))
    return cache[method]


def _loaded_llm(kb):
    """The configured LLM if this KB object already holds it (shared by a caller, or loaded by the
    ``llm`` re-ranker or expander); None otherwise."""
    if kb.__dict__.get("_shared_llm") is not None:
        return kb.__dict__["_shared_llm"]
    for stage in ("_rerankers", "_expanders"):
        llm = getattr(kb.__dict__.get(stage, {}).get("llm"), "llm", None)
        if llm is not None:
            return llm
    return None


def last_expansion(kb) -> str | None:
    """What the last expanded search of this KB object matched beside the query (None: no expansion)."""
    used = [e for e in kb.__dict__.get("_expanders", {}).values() if getattr(e, "last", "")]
    return used[-1].last if used else None


def _expansion_cache(kb):
    from pipeline.sumcache import SummaryCache

    try:
        return SummaryCache(kb.path / "cache")
    except (OSError, sqlite3.Error) as exc:  # a read-only KB: expand again each time
        log.info("no expansion cache in %s: %s", kb.path, exc)
        return None


def share_llm(kb, llm) -> None:
    """Let the ``llm`` re-ranker and query expander of this KB object use ``llm``, the model the
    caller has loaded to answer with, instead of loading the configured model a second time."""
    if llm is not None:
        kb.__dict__["_shared_llm"] = llm  # the expander, when one is first needed
    if llm is not None and llm.backend == "transformers":
        from pipeline.rerank import load_reranker
        from pipeline.rerank_models import LLMReranker

        cache = kb.__dict__.setdefault("_rerankers", {})
        if "llm" not in cache:
            cache["llm"] = LLMReranker.from_config(kb.cfg, load_reranker(kb.cfg, "features"), llm=llm)


def _scope(kb, query: str, docs: list[str] | None) -> tuple[list[int] | None, str]:
    """Documents to search (None: all) and the query to search with.

    ``docs`` (``--doc``) wins; otherwise a document the question names ("in R-data", "according to
    the R Language Definition") restricts the search to it, and the naming words leave the query."""
    if docs:
        doc_ids = []
        for ref in docs:
            found = kb.find_documents(ref)
            if not found:
                raise KnowledgeBaseError(f"no document matches {ref!r}; see `syllabus list`")
            doc_ids += [d.id for d in found]
        return doc_ids, query
    if not kb.cfg.retrieval.scope_from_question:
        return None, query
    from pipeline.scope import named_documents

    named, rest = named_documents(query, _documents_with_aliases(kb))
    if named:
        log.info("question names %s; searching only there", ", ".join(d.title or d.path for d in named))
        return [d.id for d in named], rest or query
    return None, query


def _document_similarity(kb, qvec) -> dict[int, float]:
    """Cosine of the question to each document's mean passage embedding (its centroid), cached per
    catalog generation: how much a whole book is about the question, not one passage."""
    cached = kb.__dict__.get("_centroids")
    if cached is None or cached[0] != kb.catalog.generation:
        sums: dict[int, np.ndarray] = {}
        for doc_id, blob in kb.catalog.db.execute("SELECT doc_id, embedding FROM chunks"):
            v = np.frombuffer(blob, dtype=np.float32)
            sums[doc_id] = sums[doc_id] + v if doc_id in sums else v.astype(np.float64)
        ids = list(sums)
        mat = np.array([sums[i] / (np.linalg.norm(sums[i]) or 1.0) for i in ids], dtype=np.float32)
        cached = kb.__dict__["_centroids"] = (kb.catalog.generation, ids, mat)
    _gen, ids, mat = cached
    if not ids:
        return {}
    return dict(zip(ids, (mat @ np.asarray(qvec, dtype=np.float32)).tolist()))


def _documents_with_aliases(kb) -> list:
    """The KB's documents, each with ``aliases`` (its title page's title), cached per generation."""
    from types import SimpleNamespace

    from pipeline.scope import title_page_names

    cached = kb.__dict__.get("_doc_aliases")
    if cached is None or cached[0] != kb.catalog.generation:
        names = title_page_names(kb.catalog)
        docs = [SimpleNamespace(id=d.id, path=d.path, title=d.title, aliases=[names[d.id]] if d.id in names else [])
                for d in kb.documents()]
        cached = kb.__dict__["_doc_aliases"] = (kb.catalog.generation, docs)
    return cached[1]


def diversify(hits: list, k: int, max_per_doc: int, margin: float, max_per_page: int = 0) -> list:
    """Keep one document's, or one page's, near-duplicates from filling the first ``k``.

    Greedy, best first: a passage whose page already holds ``max_per_page`` places yields to the
    next passage of another page (a reader gains nothing from a page seen twice already); a
    passage whose document already holds ``max_per_doc`` places yields to the best passage of
    another document whose score is within ``margin`` × (score range of the candidates). 0 turns
    either cap off."""
    if len(hits) <= 1 or (max_per_doc <= 0 and max_per_page <= 0):
        return hits

    def value(h) -> float:
        return h.rerank_score if h.rerank_score is not None else h.score

    def page(h) -> tuple:
        return (h.doc_id, getattr(h, "page_start", None) or getattr(h, "chunk_id", id(h)))

    spread = (max(map(value, hits)) - min(map(value, hits))) or 1.0
    pool, chosen, per_doc, per_page = list(hits), [], {}, {}
    while pool and len(chosen) < k:
        fresh = [h for h in pool if max_per_page <= 0 or per_page.get(page(h), 0) < max_per_page] or pool
        best = fresh[0]
        if 0 < max_per_doc <= per_doc.get(best.doc_id, 0):
            other = next((h for h in fresh if per_doc.get(h.doc_id, 0) < max_per_doc), None)
            if other is not None and value(best) - value(other) <= margin * spread:
                best = other
        pool.remove(best)
        chosen.append(best)
        per_doc[best.doc_id] = per_doc.get(best.doc_id, 0) + 1
        per_page[page(best)] = per_page.get(page(best), 0) + 1
    return chosen + pool


def rrf(rankings: list[list[tuple[int, float]]], k: int) -> dict[int, float]:
    """Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): sum of 1 / (k + rank)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (cid, _score) in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
    return fused
