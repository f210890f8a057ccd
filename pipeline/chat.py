"""A conversation over the knowledge base: models loaded once, each question answered by
:func:`pipeline.ask.answer` with evidence and citations, follow-ups retrieved with the conversation.

A follow-up ("and for 70B?") is retrieved as a standalone question: a model that passes the ability
check (:func:`pipeline.ability.model_is_able`, measured once per model) rewrites it from the earlier
questions (``prompts/<lang>/condense.txt``); otherwise, and whenever the rewrite is unusable, the
previous question is joined to it (the bundled 135M model is not able: it gets the join).
Slash commands change the session: ``/sources``, ``/doc NAME``, ``/k N``, ``/clear``, ``/quit``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from syllabus_common.errors import SyllabusError

# Openings that lean on the previous question; very short questions are follow-ups as well.
_FOLLOW_UP = re.compile(r"^(and|but|also|or|what about|how about|then|so|why|how|it|its|they|them|that|this|"
                        r"those|these|same|which one)\b", re.IGNORECASE)
_SHORT = 4  # words

CONDENSE_TOKENS = 64  # a rewritten question is one line
_HISTORY = 3  # earlier questions shown to the model when it rewrites a follow-up
_LEAD = re.compile(r"^\s*(?:(?:standalone|rewritten)?\s*question|follow-up|問題|追問)\s*[:：]\s*", re.IGNORECASE)

HELP = ("/sources  the passages of the last answer · /doc NAME  only that document (/doc alone: all) · "
        "/k N  passages per question · /clear  forget the conversation · /quit")


@dataclass
class Session:
    k: int | None = None
    docs: list[str] | None = None
    questions: list[str] = field(default_factory=list)  # as retrieved (follow-ups joined)
    last: object | None = None  # the last Answer

    def retrieval_question(self, question: str) -> str:
        """The question to retrieve and answer with: a follow-up is joined to the previous question."""
        question = " ".join(question.split())
        if self.questions and (_FOLLOW_UP.match(question) or len(question.split()) <= _SHORT):
            return f"{self.questions[-1]} {question}"
        return question

    def command(self, line: str, kb) -> str:
        """Apply a slash command; returns what to show ("quit" ends the session)."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in ("/quit", "/exit"):
            return "quit"
        if name == "/clear":
            self.questions, self.last = [], None
            return "conversation cleared"
        if name == "/k":
            if not arg.isdigit() or int(arg) < 1:
                return "usage: /k N (a whole number ≥ 1)"
            self.k = int(arg)
            return f"k = {self.k}"
        if name == "/doc":
            if not arg:
                self.docs = None
                return "searching all documents"
            try:
                doc = kb.find_document(arg)
            except SyllabusError as exc:
                return str(exc)
            self.docs = [str(doc.id)]
            return f"only #{doc.id} {doc.title}"
        if name == "/sources":
            return "\n\n".join(sources(self.last)) if self.last is not None else "no answer yet"
        return f"unknown command {name}; {HELP}"

    def standalone(self, question: str, llm, prompts, cfg, mode: str | None = None) -> str:
        """The question to retrieve and answer with: rewritten by an able model, else joined. In
        ``extractive`` mode the model is not used for answers, nor for this."""
        question = " ".join(question.split())
        if not self.questions or llm is None or (mode or cfg.ask.mode) == "extractive":
            return self.retrieval_question(question)
        from pipeline.ability import model_is_able
        from pipeline.llm import options_from_config
        from syllabus_common.models import user_cache_dir

        if model_is_able(llm, prompts, options_from_config(cfg.llm), user_cache_dir()):
            rewritten = condense(llm, prompts, self.questions[-_HISTORY:], question)
            if rewritten:
                return rewritten
        return self.retrieval_question(question)

    def ask(self, kb, llm, question: str, **kwargs):
        """Answer ``question`` in the conversation (``kwargs`` go to :func:`pipeline.ask.answer`)."""
        from pipeline.ask import answer
        from pipeline.prompting import load_prompts

        cfg = kwargs.get("cfg") or kb.cfg
        kwargs["prompts"] = kwargs.get("prompts") or load_prompts(cfg)
        asked = self.standalone(question, llm, kwargs["prompts"], cfg, kwargs.get("mode"))
        result = answer(kb, llm, asked, k=self.k, docs=self.docs, **kwargs)
        self.questions.append(asked)
        self.last = result
        return result


def sources(result) -> list[str]:
    """The full passages of an answer, each headed by its number and citation."""
    from pipeline.ask import format_passage

    return [format_passage(c) for c in result.citations]


def condense(llm, prompts, history: list[str], question: str) -> str | None:
    """``question`` rewritten by ``llm`` to stand alone after ``history``; None when the reply is not
    one plausible question (empty, several lines of text, far longer than what it rewrites)."""
    from pipeline.llm import GenerationOptions
    from pipeline.prompting import detect_language

    language = detect_language(question)
    messages = prompts.render("condense", language, history="\n".join(f"- {q}" for q in history), question=question)
    text = llm.stream(messages, GenerationOptions(max_new_tokens=CONDENSE_TOKENS, temperature=0.0)).text()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    asked = [line for line in lines if line.endswith(("?", "？"))]
    if not lines:
        return None
    rewritten = " ".join(_LEAD.sub("", (asked or lines)[0]).strip().strip('"“”「」').split())
    limit = len(question) + sum(len(q) for q in history) + 40  # a rewrite adds the subject, not a paragraph
    if len(rewritten) < 2 or len(rewritten) > limit:
        return None
    return rewritten
