"""Query expansion: BM25 also matches an expander's text (the LLM's short answer); the re-ranker
and everything shown still come from the question and the passages."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


def test_bm25_finds_the_page_through_the_expanders_words(kb_factory, topic_pdf):
    """A question that shares no word with its page is found once the expander names the page's
    words; the re-ranker is given the question, not the expansion."""
    from pipeline.expand import Expander, register_expander, unregister_expander
    from pipeline.rerank import FeatureReranker, register_reranker, unregister_reranker

    class Knows(Expander):
        name = "knows"
        asked: list[str] = []

        def expand(self, question):
            self.asked.append(question)
            return "The Fresnel lens: concentric glass prisms bend the lamp into a beam."

    seen: list[str] = []

    class Recording(FeatureReranker):
        def scores(self, query, hits):
            seen.append(query)
            return super().scores(query, hits)

    knows = Knows()
    register_expander("knows-test", lambda cfg, llm=None, cache=None: knows)
    register_reranker("recording-test", lambda cfg: Recording())
    try:
        kb = kb_factory()
        kb.ingest([topic_pdf])
        question = "What did Augustin invent for coastal towers?"
        plain = kb.search(question, k=3, fusion="bm25")
        assert all(h.page_start != 8 for h in plain)  # no shared word: BM25 alone misses the page
        expanded = kb.search(question, k=3, fusion="bm25", expand="knows-test")
        assert expanded[0].page_start == 8  # the lighthouse page
        hybrid = kb.search(question, k=3, expand="knows-test", rerank="recording-test")
        assert hybrid[0].page_start == 8 and seen == [question]
        assert knows.asked == [question, question]
        plain_dense = kb.search(question, k=3, fusion="dense")
        assert [h.chunk_id for h in kb.search(question, k=3, fusion="dense", expand="knows-test")] == \
            [h.chunk_id for h in plain_dense]  # retrieval.expand.dense off: the embedded query is the question
        r = kb.cfg.retrieval
        kb.cfg = kb.cfg.model_copy(update={"retrieval": r.model_copy(update={"expand": r.expand.model_copy(update={"dense": True})})})
        assert kb.search(question, k=3, fusion="dense", expand="knows-test")[0].page_start == 8
        assert plain_dense[0].page_start != 8
    finally:
        unregister_expander("knows-test")
        unregister_reranker("recording-test")


def test_the_llm_expander_answers_once_and_then_from_the_cache(tmp_path):
    """The bundled model writes the expansion (greedy, a few tokens); the same question again is
    read from the KB's cache, and another decoding setting is another entry."""
    from test_llm_support import shared_llm

    from pipeline.expand import LLMExpander
    from pipeline.llm.base import GenerationOptions
    from pipeline.sumcache import SummaryCache

    cache = SummaryCache(tmp_path / "cache")
    expander = LLMExpander(shared_llm(), GenerationOptions(max_new_tokens=12), cache)
    first = expander.expand("How do I read a table of data from a file in R?")
    assert first.strip() and expander.seconds > 0 and "\n" not in first
    again = expander.expand("How do I read a table of data from a file in R?")
    assert again == first and expander.seconds == 0.0 and expander.last == first
    longer = LLMExpander(expander.llm, GenerationOptions(max_new_tokens=16), cache)
    assert longer._key("q") != expander._key("q")
    assert cache.count() == 1
    cache.close()


def test_expansion_settings_are_checked(cfg):
    from syllabus_common.errors import ConfigError
    from pipeline.config import ExpandConfig
    from pipeline.expand import NoExpansion, load_expander

    assert cfg.retrieval.expand.method == "none"  # opt-in
    assert isinstance(load_expander(cfg), NoExpansion)
    with pytest.raises(ConfigError, match="unknown retrieval.expand.method 'magic'; valid: llm, none"):
        load_expander(cfg, "magic")
    with pytest.raises(ValueError):
        ExpandConfig(method="llm", max_new_tokens=0, dense=False)


def test_search_expand_from_the_command_line(tmp_path, topic_pdf):
    """`search --expand llm --json` carries what was matched beside the question; a bad name is a
    one-line usage error."""
    kb = tmp_path / "kb"
    assert run_cli("--kb", str(kb), "ingest", str(topic_pdf)).returncode == 0
    bad = run_cli("--kb", str(kb), "search", "x", "--expand", "magic")
    assert bad.returncode == 2 and "--expand must be one of llm, none" in bad.stderr and "Traceback" not in bad.stderr
    short = tmp_path / "short.yaml"
    short.write_text("retrieval:\n  expand:\n    max_new_tokens: 12\n")
    done = run_cli("--config", str(short), "--kb", str(kb), "search",
                   "How do bees tell each other where the flowers are?", "--expand", "llm", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["expansion"] and data["hits"][0]["page_start"] == 4


def test_the_llm_reranker_and_the_llm_expander_share_one_loaded_model(kb_factory, topic_pdf, monkeypatch):
    """With both stages on ``llm`` (the configuration that meets the retrieval targets with a 1.5B
    model), a KB object loads the configured model once, whichever stage needs it first."""
    import pipeline.llm
    from test_llm_support import shared_llm

    loads: list[str] = []

    def load_model(cfg, *args, **kwargs):  # the real bundled model, counted
        loads.append(cfg.llm.model)
        return shared_llm()

    monkeypatch.setattr(pipeline.llm, "load_model", load_model)
    question = "How do bees tell each other where the flowers are?"
    for order in (("rerank", "expand"), ("expand", "rerank")):
        kb = kb_factory("kb-" + "-".join(order))
        kb.ingest([topic_pdf])
        r = kb.cfg.retrieval
        kb.cfg = kb.cfg.model_copy(update={"retrieval": r.model_copy(update={
            "expand": r.expand.model_copy(update={"max_new_tokens": 8}),
            "rerank": r.rerank.model_copy(update={"llm_passages": 3})})})
        before = len(loads)
        for stage in order:  # one stage alone first, then both
            kb.search(question, k=3, **{stage: "llm"})
        hits = kb.search(question, k=3, rerank="llm", expand="llm")
        assert hits and hits[0].page_start == 4
        assert len(loads) == before + 1, order
        assert kb._rerankers["llm"].llm is kb._expanders["llm"].llm
