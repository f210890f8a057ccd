"""Library-scale retrieval: code-aware BM25, re-ranking, document scoping and diversification."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import pdfgen
from pipeline.kb.lexical import LexicalIndex, tokenize
from pipeline.kb.search import diversify
from pipeline.kb.tokens import TOKENIZER_VERSION, code_tokens
from pipeline.rerank import FEATURES, FeatureReranker, Reranker, register_reranker, unregister_reranker
from pipeline.scope import named_documents


def test_code_like_tokens_survive_next_to_stemmed_words():
    tokens = tokenize("Use read.table() or base::sum, start with --vanilla, index x[[i]] and fit lm(y ~ x).")
    for kept in ("read.table", "read.table()", "base::sum", "::", "--vanilla", "[[", "lm()"):
        assert kept in tokens, kept
    assert "read" in tokens and "tabl" in tokens  # the stemmed words stay
    assert code_tokens("The end. Next sentence, a well-known fact.") == []  # prose adds nothing


def test_text_with_and_without_cjk_tokenizes_the_same_way_word_by_word():
    assert tokenize("Plotting several figures", code=False) == ["plot", "sever", "figur"]
    assert tokenize("R 的 数据框 frames", code=False) == ["r", "的", "数据", "据框", "frame"]


def test_term_proximity_lifts_the_passage_that_says_the_question_words_together():
    from pipeline.rerank import _near

    assert _near({"grid", "plot"}, ["plot"] + ["x"] * 30 + ["grid"], window=25) == 0.5
    assert _near({"grid", "plot"}, ["plot", "x", "grid"], window=25) == 1.0
    assert _near(set(), ["plot"]) == 0.0
    filler = " ".join(["the text goes on about other matters"] * 6)
    scattered = _hit(1, 1.0, text=f"Several devices. {filler} A grid of cells. {filler} Each plot, one page.")
    together = _hit(1, 0.97, text=f"To draw several plots in a grid on one page, set mfrow. {filler}")
    near = FeatureReranker(dict.fromkeys(FEATURES, 0.0) | {"near": 0.3})
    s_scattered, s_together = near.scores("How do I draw several plots in a grid on the same page?", [scattered, together])
    assert s_together > s_scattered
    off = FeatureReranker(dict.fromkeys(FEATURES, 0.0))
    s_scattered, s_together = off.scores("How do I draw several plots in a grid on the same page?", [scattered, together])
    assert s_scattered > s_together  # without the feature, the fused order stands


def test_bm25_finds_an_operator_that_words_alone_cannot():
    texts = ["Operators in general: arithmetic operators and the assignment operator.",
             "The double-colon operator pkg::name and the triple-colon ::: reach into a namespace.",
             "Comparison operators compare values."]
    for code, expect_found in ((True, True), (False, False)):
        index = LexicalIndex.build([1, 2, 3], texts, "english", generation=1, code=code)
        hits = index.search("What are :: and :::", 3)
        assert bool(hits and hits[0][0] == 2) is expect_found


def test_index_from_an_older_tokenizer_is_rebuilt(kb_factory, topic_pdf):
    kb = kb_factory()
    kb.ingest([topic_pdf])
    meta_path = kb.path / "bm25" / LexicalIndex.META
    meta = json.loads(meta_path.read_text())
    assert meta["tokenizer"] == TOKENIZER_VERSION
    meta["tokenizer"] = TOKENIZER_VERSION - 1
    meta_path.write_text(json.dumps(meta))
    assert not kb._indexes_current()
    reopened = kb_factory()  # same folder: a fresh object loads (and rebuilds) the indexes
    assert reopened.search("waggle dance", k=1)[0].page_start == 4
    assert json.loads(meta_path.read_text())["tokenizer"] == TOKENIZER_VERSION


def _doc(i, path, title):
    return SimpleNamespace(id=i, path=path, title=title)


def test_a_question_that_names_a_document_is_scoped_to_it():
    docs = [_doc(1, "/m/R-data.pdf", "R Data Import/Export"), _doc(2, "/m/R-lang.pdf", "R Language Definition"),
            _doc(3, "/m/R-ints.pdf", "R Internals")]
    named, rest = named_documents("How do I read a SAS file in R-data?", docs)
    assert [d.id for d in named] == [1] and "R-data" not in rest and "SAS file" in rest
    named, rest = named_documents("What is a promise according to the R language definition?", docs)
    assert [d.id for d in named] == [2] and rest.startswith("What is a promise")
    for prose in ("How do I import R data from SAS?", "Which R internals does gc() touch?"):
        assert named_documents(prose, docs)[0] == []  # common words, no cue: not a document's name


def _hit(doc_id, score, section="1 Chapter", text="words"):
    return SimpleNamespace(doc_id=doc_id, score=score, rerank_score=None, section=section, text=text, title="")


def test_diversify_caps_one_document_only_when_scores_are_close():
    close = [_hit(1, 1.0), _hit(1, 0.99), _hit(1, 0.98), _hit(2, 0.97), _hit(1, 0.5)]
    assert [h.doc_id for h in diversify(close, 3, max_per_doc=2, margin=0.1)][:3] == [1, 1, 2]
    far = [_hit(1, 1.0), _hit(1, 0.99), _hit(1, 0.98), _hit(2, 0.2), _hit(1, 0.1)]
    assert [h.doc_id for h in diversify(far, 3, max_per_doc=2, margin=0.1)][:3] == [1, 1, 1]
    assert diversify(close, 3, max_per_doc=0, margin=1.0) == close  # off
    same_page = [SimpleNamespace(**vars(_hit(1, 1.0 - i / 10)), page_start=p) for i, p in enumerate([7, 7, 7, 9])]
    assert [h.page_start for h in diversify(same_page, 2, max_per_doc=0, margin=0, max_per_page=1)][:2] == [7, 9]


def test_document_evidence_lifts_the_book_the_candidates_agree_on():
    # A sibling book's near-duplicate comes first by a hair; the rest of the evidence is book 1.
    hits = [_hit(2, 1.00), _hit(1, 0.99), _hit(1, 0.9), _hit(1, 0.8), _hit(1, 0.7)]
    only_doc = dict.fromkeys(FEATURES, 0.0) | {"doc": 0.5}
    scores = FeatureReranker(only_doc).scores("a question", hits)
    assert max(range(len(hits)), key=scores.__getitem__) == 1
    code = FeatureReranker(dict.fromkeys(FEATURES, 0.0) | {"code": 0.5})
    plain, exact = _hit(1, 1.0, text="start R without profiles"), _hit(1, 0.9, text="R --vanilla skips them")
    s_plain, s_exact = code.scores("What does --vanilla do?", [plain, exact])
    assert s_exact > s_plain
    toc = _hit(1, 1.0, text="Chapter 1 . . . . . . . 3\nChapter 2 . . . . . . . 9")
    plain = _hit(1, 0.98, text="The answer, explained in prose.")
    s_toc, s_plain = FeatureReranker().scores("a question", [toc, plain])
    assert s_plain > s_toc  # a table of contents names a subject without explaining it


def _two_books(tmp_path):
    first = pdfgen.topic_book(tmp_path / "facts.pdf")
    second = pdfgen.topic_book(tmp_path / "field-guide.pdf", title="The Field Guide of Facts")
    return first, second


def test_scope_from_question_and_doc_option_restrict_search(kb_factory, tmp_path):
    kb = kb_factory()
    first, second = _two_books(tmp_path)
    kb.ingest([first, second])
    both = {h.path for h in kb.search("How do bees tell each other where the flowers are?", k=4)}
    assert len(both) == 2  # near-duplicates of two books: diversified, both present
    named = kb.search("In the Field Guide of Facts, how do bees tell each other where flowers are?", k=4)
    assert {h.path for h in named} == {str(second.resolve())} and named[0].page_start == 4
    by_option = kb.search("How do bees find flowers?", k=4, docs=["facts.pdf"])
    assert {h.path for h in by_option} == {str(first.resolve())}


def test_a_registered_reranker_decides_the_order(kb_factory, topic_pdf, cfg):
    class Reverse(Reranker):
        name = "reverse"

        def scores(self, query, hits):
            return [float(i) for i in range(len(hits))]  # last fused candidate first

    register_reranker("reverse-test", lambda c: Reverse())
    try:
        kb = kb_factory()
        kb.ingest([topic_pdf])
        fused = kb.search("waggle dance of honeybees", k=3, rerank="none")
        reranked = kb.search("waggle dance of honeybees", k=3, rerank="reverse-test")
        assert fused[0].page_start == 4 and reranked[0].chunk_id != fused[0].chunk_id
        assert reranked[0].rerank_score is not None and fused[0].rerank_score is None
    finally:
        unregister_reranker("reverse-test")


def test_unknown_reranker_is_a_config_error(cfg):
    from syllabus_common.errors import ConfigError
    from pipeline.rerank import load_reranker

    with pytest.raises(ConfigError, match="unknown retrieval.rerank.method"):
        load_reranker(cfg, "no-such-reranker")
    with pytest.raises(ConfigError, match="rerank.model is not set"):
        load_reranker(cfg, "cross-encoder")
    served = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"backend": "openai"})})
    with pytest.raises(ConfigError, match="token probabilities"):
        load_reranker(served, "llm")  # a server's replies carry no likelihood of a given text: refused before loading


def test_llm_reranker_reads_the_first_pages_and_adds_their_question_likelihood(kb_factory, topic_pdf):
    """The bundled model reads the features re-ranker's first passages of distinct pages; their
    score is the features score (min-max over them) + weight × log P(question | passage), and every
    passage it did not read stays below them in the features order."""
    from test_llm_support import shared_llm

    from pipeline.rerank_models import LLMReranker

    kb = kb_factory()
    kb.ingest([topic_pdf])
    llm = shared_llm()
    reranker = LLMReranker(llm, FeatureReranker(), depth=2)
    register_reranker("llm-test", lambda c: reranker)
    try:
        question = "How do honeybees tell each other where flowers are?"
        hits = kb.search(question, k=6, rerank="none")
        features = FeatureReranker().scores(question, hits)
        scores = reranker.scores(question, hits)
        order = sorted(range(len(hits)), key=lambda i: -features[i])
        pages, read = set(), []
        for i in order:
            if (hits[i].doc_id, hits[i].page_start) not in pages and len(read) < 2:
                pages.add((hits[i].doc_id, hits[i].page_start))
                read.append(i)
        low, high = min(features[i] for i in read), max(features[i] for i in read)
        for i in read:
            expected = (features[i] - low) / ((high - low) or 1.0) + reranker.weight * reranker.loglik(question, hits[i])
            assert scores[i] == pytest.approx(expected, abs=1e-6)
        unread = [i for i in order if i not in read]
        assert max(scores[i] for i in unread) < min(scores[i] for i in read)
        assert [i for i in sorted(unread, key=lambda i: -scores[i])] == unread  # features order below
        best = kb.search(question, k=3, rerank="llm-test")
        assert best[0].page_start == 4 and best[0].rerank_score is not None  # the waggle-dance page
    finally:
        unregister_reranker("llm-test")


def test_the_llm_rerankers_passages_and_weight_come_from_the_config(cfg):
    """retrieval.rerank.llm_passages / llm_weight set how many passages the model reads and the
    weight of its log-likelihood (the measured choice differs by model); nonsense is refused."""
    from pipeline.config import RerankConfig
    from pipeline.rerank_models import LLMReranker

    rerank = cfg.retrieval.rerank.model_copy(update={"llm_passages": 10, "llm_weight": 0.1})
    tuned = cfg.model_copy(update={"retrieval": cfg.retrieval.model_copy(update={"rerank": rerank})})
    made = LLMReranker.from_config(tuned, FeatureReranker(), llm=object())
    assert (made.depth, made.weight) == (10, 0.1)
    default = LLMReranker.from_config(cfg, FeatureReranker(), llm=object())
    assert (default.depth, default.weight) == (15, 0.05)
    base = cfg.retrieval.rerank.model_dump()
    for bad in ({"llm_passages": 0}, {"llm_weight": -1.0}):
        with pytest.raises(ValueError):
            RerankConfig(**(base | bad))
