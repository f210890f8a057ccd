"""A conversation over the knowledge base: models loaded once, each question answered by
:func:`pipeline.ask.answer` with evidence and citations, follow-ups retrieved with the conversation.

A follow-up ("and for 70B?") is retrieved as the previous question joined with it: condensing it
with the LLM needs a model that can rewrite questions reliably, which the bundled 135M one cannot.
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

    def ask(self, kb, llm, question: str, **kwargs):
        """Answer ``question`` in the conversation (``kwargs`` go to :func:`pipeline.ask.answer`)."""
        from pipeline.ask import answer

        asked = self.retrieval_question(question)
        result = answer(kb, llm, asked, k=self.k, docs=self.docs, **kwargs)
        self.questions.append(asked)
        self.last = result
        return result


def sources(result) -> list[str]:
    """The full passages of an answer, each headed by its number and citation."""
    from pipeline.ask import format_passage

    return [format_passage(c) for c in result.citations]
