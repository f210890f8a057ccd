"""`syllabus chat`: the session logic on a fake model, and the real command through a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
from ptyio import read_until, read_while  # noqa: E402  (shared with the startup bench)
from test_ask import topic_kb  # noqa: F401  (the fixture: the topic book in a KB)
from test_llm_support import TEST_MAX_NEW, FakeLLM, cache_env, fake_backend, llm_config

BEES = "How do bees tell each other where the flowers are?"


def test_a_follow_up_is_retrieved_with_the_previous_question(topic_kb):
    from pipeline.chat import Session

    session = Session()
    cfg = llm_config(max_new_tokens=TEST_MAX_NEW, context=2048)
    first = session.ask(topic_kb, FakeLLM(), BEES, cfg=cfg)
    assert first.found and any(c.page == 4 for c in first.citations)
    follow = session.ask(topic_kb, FakeLLM(), "and the lava?", cfg=cfg)
    assert follow.question.startswith(BEES) and follow.question.endswith("and the lava?")
    standalone = "Which lava builds volcanoes with gentle slopes?"
    assert session.retrieval_question(standalone) == standalone


def _able_reply(rewrite: str):
    """Replies of a model that passes the ability check (it copies the fact that answers, citing it)
    and rewrites follow-ups as ``rewrite``."""
    from pipeline.ability import PROBES

    def reply(messages) -> str:
        prompt = messages[-1]["content"]
        if "Follow-up:" in prompt:
            return rewrite
        for facts, question, _ in PROBES:
            if question in prompt:
                return f"{facts[0]} [1]"
        return "Bees dance to show the direction of flowers [1]."

    return reply


def test_an_able_model_condenses_the_follow_up_and_a_bad_rewrite_falls_back_to_the_join(topic_kb, tmp_path, monkeypatch):
    from pipeline.chat import Session
    from pipeline.llm import load_llm

    monkeypatch.setenv("SYLLABUS_CACHE", str(tmp_path))  # the ability check's cache
    standalone = "How far do bees fly to find flowers?"
    fake = FakeLLM(reply=_able_reply(f"Standalone question: {standalone}"), name="able-fake")
    with fake_backend(fake):
        cfg = llm_config(backend="fake", max_new_tokens=TEST_MAX_NEW, context=2048)
        llm = load_llm(cfg.llm)
        session = Session()
        session.ask(topic_kb, llm, BEES, cfg=cfg)
        follow = session.ask(topic_kb, llm, "and how far do they fly?", cfg=cfg)
    assert follow.question == standalone  # retrieved and answered as the model rewrote it
    condense_calls = [c for c in fake.calls if "Follow-up:" in c["messages"][-1]["content"]]
    assert len(condense_calls) == 1 and BEES in condense_calls[0]["messages"][-1]["content"]
    assert session.questions == [BEES, standalone]
    rambling = FakeLLM(reply=_able_reply("\n\n"), name="able-fake")  # nothing usable: the join
    with fake_backend(rambling):
        llm = load_llm(cfg.llm)
        joined = Session(questions=[BEES]).ask(topic_kb, llm, "and the lava?", cfg=cfg)
    assert joined.question == f"{BEES} and the lava?"


def test_commands_change_the_session(topic_kb):
    from pipeline.chat import Session

    session = Session()
    assert session.command("/sources", topic_kb) == "no answer yet"
    assert session.command("/k 2", topic_kb) == "k = 2" and session.k == 2
    assert session.command("/k zero", topic_kb).startswith("usage")
    assert session.command("/doc topics.pdf", topic_kb).startswith("only #") and session.docs
    assert "no document matches" in session.command("/doc nothing.pdf", topic_kb)
    session.ask(topic_kb, FakeLLM(), BEES, cfg=llm_config(max_new_tokens=TEST_MAX_NEW, context=2048))
    assert len(session.last.citations) <= 2
    assert session.command("/sources", topic_kb).startswith("[1] A Book of Small Facts")
    assert session.command("/clear", topic_kb) == "conversation cleared" and not session.questions
    assert session.command("/doc", topic_kb) == "searching all documents" and session.docs is None
    assert session.command("/quit", topic_kb) == "quit"
    assert session.command("/nope", topic_kb).startswith("unknown command")


def test_chat_in_a_terminal_answers_stops_on_ctrl_c_and_quits(topic_kb, tmp_path):
    env = dict(os.environ, **cache_env(tmp_path / "cache"), TERM="dumb")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--kb", str(topic_kb.path), "chat", "-k", "2",
                             "--mode", "generative", "--max-tokens", "256"], stdin=child, stdout=child, stderr=child,
                            cwd=ROOT, env=env, start_new_session=True,
                            # as in a terminal: Ctrl-C reaches the chat even when the suite was started
                            # with SIGINT ignored (a background job of a non-interactive shell)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(child)
    seen = bytearray()
    try:
        assert read_until(main, b"> ", seen, 300), seen.decode(errors="replace")[-2000:]
        os.write(main, (BEES + "\n").encode())
        assert read_until(main, b"Sources", seen, 300), seen.decode(errors="replace")[-2000:]
        assert read_until(main, b"\n> ", seen, 60)
        del seen[:]
        os.write(main, b"/sources\n")
        assert read_until(main, b"[1] A Book of Small Facts", seen, 30), seen.decode(errors="replace")
        assert read_until(main, b"\n> ", seen, 30)
        del seen[:]
        # Ctrl-C once the evidence is on screen: the model is writing then. A short answer can still end
        # before the signal lands, so the question is asked up to three times; the Ctrl-C must stop one
        # of them and leave the session at its prompt, ready for the next.
        for question in (BEES.encode(),) * 3:
            del seen[:]
            os.write(main, question + b"\n")
            assert read_until(main, b"Evidence:", seen, 300), seen.decode(errors="replace")[-2000:]
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground process group
            assert read_while(main, seen, lambda: b"(stopped)" not in seen and b"Sources" not in seen, 300), \
                seen.decode(errors="replace")[-2000:]
            end = seen.find(b"(stopped)") if b"(stopped)" in seen else seen.find(b"Sources")
            assert read_while(main, seen, lambda: b"\n> " not in seen[end:], 120), seen.decode(errors="replace")[-2000:]
            if b"(stopped)" in seen:
                break
        assert b"(stopped)" in seen, seen.decode(errors="replace")[-2000:]
        assert proc.poll() is None  # the session goes on, and the stopped model answers again
        del seen[:]
        os.write(main, (BEES + "\n").encode())
        assert read_until(main, b"Sources", seen, 300), seen.decode(errors="replace")[-2000:]
        assert read_until(main, b"\n> ", seen, 60)
        os.write(main, b"/quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
