"""`ask`: retrieval → packed prompt → streamed answer with citations to the page holding the fact."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from conftest import run_cli
from test_llm_support import TEST_MAX_NEW, FakeLLM, cache_env, llm_config, shared_llm

from pipeline.api import answer as ask
from pipeline.ask import cited_numbers, prepare
from pipeline.prompting import PromptSet

BEES = ("How do bees tell each other where the flowers are?", 4, "2")  # question, physical page, printed label


@pytest.fixture(scope="module")
def topic_kb(cfg, embedder, topic_pdf, tmp_path_factory):
    from pipeline.kb import KnowledgeBase

    kb = KnowledgeBase(cfg, tmp_path_factory.mktemp("ask") / "kb", embedder=embedder, create=True)
    assert not kb.ingest([topic_pdf])[0].failed
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def ask_cfg():
    return llm_config(max_new_tokens=TEST_MAX_NEW, context=2048)


def test_answer_cites_the_page_holding_the_fact(topic_kb, ask_cfg):
    llm = shared_llm()
    question, page, label = BEES
    deltas, seen = [], []
    answer = ask(topic_kb, llm, question, k=3, prompts=PromptSet(), cfg=ask_cfg, on_delta=deltas.append,
                 on_evidence=seen.append)
    assert answer.found and answer.language == "en"
    assert llm.count_chat_tokens(answer.messages) + TEST_MAX_NEW <= llm.context_length
    assert seen and seen[0].evidence  # the evidence is shown before any model writes
    assert answer.answer == "".join(deltas).strip()  # the checked answer, as delivered
    top = answer.citations[0]
    assert (top.page, top.page_label) == (page, label), [(c.page, c.page_label) for c in answer.citations]
    assert "waggle dance" in top.text and top.doc == "A Book of Small Facts"
    assert any(e["page"] == page and e["page_label"] == label and "waggle" in e["text"] for e in answer.evidence)
    # A passage is flagged as cited only if evidence the answer rests on came from it.
    assert {c.n for c in answer.citations if c.cited} <= {e["passage"] for e in answer.evidence}
    assert all(v["supported"] for v in answer.verdicts if v["text"] in answer.answer)
    data = answer.as_dict()
    for key in ("doc", "page_label", "page", "section", "text"):
        assert key in data["citations"][0]
    assert data["timings"]["first_token_s"] is not None and data["timings"]["retrieve_s"] >= 0


def test_off_topic_question_is_not_found_and_the_model_is_not_asked(topic_kb, ask_cfg):
    fake = FakeLLM()
    streamed = []
    result = ask(topic_kb, fake, "What is the tax rate on capital gains in Norway?", prompts=PromptSet(), cfg=ask_cfg,
                 on_delta=streamed.append)
    assert not result.found and result.best_similarity < ask_cfg.ask.min_similarity
    assert "did not find" in result.answer and streamed == []
    assert result.citations  # the closest passages are still listed
    assert fake.calls == []
    zh = prepare(topic_kb, fake, PromptSet(), ask_cfg, "挪威的資本利得稅率是多少？")
    assert not zh.found and zh.language == "zh-TW" and "找不到" in zh.messages[-1]["content"]


def test_question_language_picks_the_prompt(topic_kb, ask_cfg):
    prepared = prepare(topic_kb, FakeLLM(), PromptSet(), ask_cfg.model_copy(update={"ask": ask_cfg.ask.model_copy(update={"min_similarity": -1.0})}),
                       "蜜蜂如何告訴彼此花在哪裡？")
    assert prepared.language == "zh-TW"
    assert "問題：蜜蜂如何告訴彼此花在哪裡？" in prepared.messages[-1]["content"]


def test_a_window_too_small_for_any_passage_is_a_clear_error(topic_kb, ask_cfg):
    from pipeline.packing import DoesNotFit

    with pytest.raises(DoesNotFit, match="no room for a passage"):
        prepare(topic_kb, FakeLLM(context=150), PromptSet(), ask_cfg, BEES[0], max_new_tokens=64)


@contextmanager
def retrieval_setting(kb, section: str, loaded: str, **update):
    """``kb`` searches with ``retrieval.<section>`` updated, its ``loaded`` objects (re-rankers,
    expanders) made anew; both restored afterwards."""
    saved = kb.cfg
    changed = getattr(saved.retrieval, section).model_copy(update=update)
    kb.cfg = saved.model_copy(update={"retrieval": saved.retrieval.model_copy(update={section: changed})})
    kb.__dict__.pop(loaded, None)
    try:
        yield kb
    finally:
        kb.cfg = saved
        kb.__dict__.pop(loaded, None)


def test_an_answer_reranked_by_the_llm_uses_the_answering_model(topic_kb, ask_cfg):
    """With retrieval.rerank.method llm, the model loaded to answer also re-ranks: not loaded twice."""
    llm = shared_llm()
    with retrieval_setting(topic_kb, "rerank", "_rerankers", method="llm"):
        prepared = prepare(topic_kb, llm, PromptSet(), ask_cfg, BEES[0], k=3, max_new_tokens=64)
        assert topic_kb._rerankers["llm"].llm is llm
        assert prepared.citations[0].page == BEES[1]


def test_an_expanded_search_uses_the_answering_model_and_never_shows_its_answer(topic_kb, ask_cfg):
    """With retrieval.expand.method llm, the model loaded to answer writes the expansion (not a
    second copy); the prompt holds the question and the passages, never the expansion."""
    llm = shared_llm()
    with retrieval_setting(topic_kb, "expand", "_expanders", method="llm", max_new_tokens=12):
        prepared = prepare(topic_kb, llm, PromptSet(), ask_cfg, BEES[0], k=3, max_new_tokens=64)
        expander = topic_kb._expanders["llm"]
        assert expander.llm is llm and expander.last.strip()
        assert prepared.citations[0].page == BEES[1]
        prompt = " ".join(m["content"] for m in prepared.messages)
        assert BEES[0] in prompt and expander.last not in prompt


@pytest.mark.parametrize("context", [200, 260, 600])
def test_passages_are_packed_into_a_small_window(topic_kb, ask_cfg, context):
    fake = FakeLLM(context=context)
    prepared = prepare(topic_kb, fake, PromptSet(), ask_cfg, BEES[0], k=6, max_new_tokens=64)
    assert fake.count_chat_tokens(prepared.messages) + 64 <= context
    assert 1 <= len(prepared.citations) <= 6
    # Passages keep their rank order and numbers; the prompt holds exactly the cited texts.
    assert [c.n for c in prepared.citations] == list(range(1, len(prepared.citations) + 1))
    for c in prepared.citations:
        assert c.text.strip().split()[0] in prepared.messages[-1]["content"]


def test_cli_streams_the_answer_then_always_lists_sources(topic_kb, tmp_path):
    env = cache_env(tmp_path / "cache")
    result = run_cli("--kb", str(topic_kb.path), "ask", BEES[0], "-k", "2", "--max-tokens", str(TEST_MAX_NEW), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    answer, _, sources = result.stdout.partition("Sources")
    assert answer.strip(), result.stdout
    assert "[1] A Book of Small Facts, p. 2 (pdf p. 4)" in " ".join(sources.split())
    assert "first token" in result.stderr
    assert "Warning" not in result.stderr, result.stderr[-2000:]  # no library's deprecation notes for the user


def test_transcript_passages_cite_times_and_citation_numbers_parse():
    from pipeline.ask import Citation, format_passage

    lecture = Citation(n=2, doc="Lecture 3", path="/l3.mp4", page_label=None, page=None, page_end=None,
                       page_label_end=None, section="KV cache", time="12:05–13:40", text="The cache grows with context.",
                       similarity=0.5)
    assert lecture.where == "12:05–13:40"
    assert format_passage(lecture).startswith("[2] Lecture 3, 12:05–13:40 — KV cache")
    window = Citation(n=1, doc="lecture", path="/l.m4a", page_label=None, page=None, page_end=None, page_label_end=None,
                      section="00:00–01:02", time="00:00–01:01", text="Adam takes 16 bytes.", similarity=0.4)
    assert format_passage(window).splitlines()[0] == "[1] lecture, 00:00–01:01"  # a time-window section is not repeated
    assert window.heading == "" and lecture.heading == "KV cache"
    from syllabus_common.timefmt import is_window

    assert is_window("1:02:03 - 1:05:00") and not is_window("Week 2, 00:00–01:02")
    assert cited_numbers("As shown [1], and again [2, 3]; not [x] or [12a] [4;5].") == {1, 2, 3, 4, 5}
