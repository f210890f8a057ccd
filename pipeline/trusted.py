"""An answer a student can trust: evidence first, then (perhaps) the model's words, checked.

:func:`trusted_answer` takes the retrieved passages and returns a :class:`TrustedAnswer`:

1. evidence: the sentences of the passages that answer the question, verbatim, each with its
   citation (:mod:`pipeline.evidence`); printed in every mode;
2. the mode (``ask.mode``): ``extractive`` answers with the evidence itself; ``generative`` has the
   model write from the evidence alone (``prompts/<lang>/evidence_answer.txt``), then checks every
   sentence against the evidence it cites (:mod:`pipeline.verify`): unsupported sentences are
   dropped (or kept and marked with ``show_unsupported``), and when nothing survives the evidence is
   the answer, with a note saying so; ``auto`` picks by the model's measured ability
   (:func:`pipeline.ability.model_is_able`), not its name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipeline.ability import generate_on_evidence
from pipeline.evidence import Evidence, Passage, evidence_block, select
from pipeline.prompting import detect_language
from pipeline.verify import Faithfulness, Verdict, kept_text, verify

MODES = ("auto", "extractive", "generative")
NOTES = {
    "en": {
        "extractive": "The evidence above is the answer (extractive mode: quoted from the sources).",
        "nothing_left": "No sentence of the model's answer could be checked against the evidence; the evidence above is the answer.",
        "no_evidence": "No passage holds a sentence that answers this.",
    },
    "zh-TW": {
        "extractive": "以上證據即為答案（擷取模式：直接引用來源）。",
        "nothing_left": "模型的回答沒有任何一句能與證據核對；以上證據即為答案。",
        "no_evidence": "沒有任何段落含有回答這個問題的句子。",
    },
}


@dataclass
class TrustedAnswer:
    question: str
    language: str
    mode: str  # the mode used: "extractive" | "generative"
    evidence: list[Evidence]
    answer: str  # the printed answer: verified sentences with [n] markers ("" when the evidence is the answer)
    verdicts: list[Verdict] = field(default_factory=list)
    note: str = ""  # one line shown under the answer when the evidence stands alone
    generated: str = ""  # the model's raw text (generative mode)
    faithfulness: Faithfulness = field(default_factory=Faithfulness)
    timings: dict = field(default_factory=dict)

    @property
    def cited(self) -> list[int]:
        """Evidence numbers the printed answer cites (all the evidence when it stands alone)."""
        if not self.answer:
            return [e.n for e in self.evidence]
        return sorted({n for v in self.verdicts if v.supported for n in v.cited})

    def as_dict(self) -> dict:
        return {
            "question": self.question, "language": self.language, "mode": self.mode,
            "evidence": [e.as_dict() for e in self.evidence], "answer": self.answer, "note": self.note,
            "verdicts": [v.as_dict() for v in self.verdicts], "generated": self.generated,
            "faithfulness": {"checked": self.faithfulness.checked, "dropped": self.faithfulness.dropped,
                             "line": self.faithfulness.line},
            "cited": self.cited, "timings": self.timings,
        }

    def body(self, show_unsupported: bool = False) -> str:
        """The answer under the evidence: checked sentences (unsupported ones marked when shown)."""
        return kept_text(self.verdicts, show_unsupported) if show_unsupported else self.answer

    def render(self, show_unsupported: bool = False) -> str:
        """Plain text: the evidence block, then the answer (or the note)."""
        head = "證據" if self.language == "zh-TW" else "Evidence"
        lines = [f"{head}:", evidence_block(self.evidence)] if self.evidence else []
        body = self.body(show_unsupported)
        if body:
            lines += ["", body]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


def _notes(language: str) -> dict:
    return NOTES.get(language, NOTES["en"])


def trusted_answer(question: str, passages: list[Passage], embedder, llm=None, prompts=None, options=None,
                   mode: str = "extractive", top: int = 3, rerank=None, locate=None,
                   on_evidence=None, question_vector=None) -> TrustedAnswer:
    """Evidence from ``passages``, then the answer in ``mode`` ("auto" must be resolved by the caller
    with :func:`pipeline.ability.resolve_mode`, which may run the model's self-check once).
    ``on_evidence(answer)`` sees the evidence before the model is asked (the CLI prints it then)."""
    if mode not in ("extractive", "generative"):
        raise ValueError(f"mode {mode!r}: resolve 'auto' first; valid: extractive, generative")
    out = gather_evidence(question, passages, embedder, top, rerank, locate, question_vector)
    if on_evidence is not None:
        on_evidence(out)
    return write_answer(out, llm, prompts, options, mode)


def gather_evidence(question: str, passages: list[Passage], embedder, top: int = 3, rerank=None, locate=None,
                    question_vector=None) -> TrustedAnswer:
    """The evidence alone (no model): what is printed first, whatever the mode."""
    question = " ".join(question.split())
    language = detect_language(question)
    t0 = time.perf_counter()
    evidence = select(question, passages, embedder, top=top, rerank=rerank, locate=locate,
                      question_vector=question_vector)
    timings = {"evidence_s": round(time.perf_counter() - t0, 4)}
    return TrustedAnswer(question, language, "extractive", evidence, "", timings=timings)


def write_answer(out: TrustedAnswer, llm, prompts, options, mode: str, since: float | None = None) -> TrustedAnswer:
    """``out`` (its evidence gathered) completed in ``mode``: the note, or the model's checked sentences.
    ``since``: when the question came (``time.perf_counter()``), for ``generated_first_token_s``."""
    notes = _notes(out.language)
    out.mode = mode if llm is not None else "extractive"
    if not out.evidence:
        out.note = notes["no_evidence"]
        return out
    if mode == "extractive" or llm is None:
        out.mode = "extractive"
        out.note = notes["extractive"]
        return out
    t1 = time.perf_counter()
    stats: list = []
    out.generated = generate_on_evidence(llm, prompts, options, out.question, out.language, out.evidence, stats)
    out.timings["generate_s"] = round(time.perf_counter() - t1, 4)
    if since is not None and stats and stats[0].first_token_s is not None:  # the model's first token, from the question
        out.timings["generated_first_token_s"] = round(t1 - since + stats[0].first_token_s, 4)
    out.verdicts = verify(out.generated, {e.n: e.text for e in out.evidence})
    out.faithfulness.add(out.verdicts)
    out.answer = kept_text(out.verdicts, show_unsupported=False)
    if not out.answer:
        out.note = notes["nothing_left"]
    return out


def answer_on(question: str, passages: list[Passage], embedder, llm, prompts, cfg, options, mode: str | None = None,
              on_evidence=None, cache_dir=None, already_s: float = 0.0, question_vector=None) -> TrustedAnswer:
    """:func:`trusted_answer` with the config's mode (``auto`` resolved by the model's measured
    ability, after the evidence is shown: the check may wait for the model) and evidence count;
    ``already_s``: seconds spent before (retrieval), for the timings."""
    from pipeline.ability import resolve_mode
    from pipeline.evidence import PdfPageLocator
    from syllabus_common.models import user_cache_dir

    t0 = time.perf_counter()
    requested = mode or cfg.ask.mode
    if requested not in MODES:
        resolve_mode(requested, llm, prompts, options, None)  # the error that names the valid modes
    out = gather_evidence(question, passages, embedder, top=cfg.ask.evidence, locate=PdfPageLocator(),
                          question_vector=question_vector)
    out.timings["evidence_at_s"] = round(already_s + time.perf_counter() - t0, 4)  # when the evidence can be shown
    if on_evidence is not None:
        on_evidence(out)
    resolved = resolve_mode(requested, llm, prompts, options, cache_dir or user_cache_dir())
    return write_answer(out, llm, prompts, options, resolved, since=t0 - already_s)


def answer_hits(question: str, hits, embedder, llm, prompts, cfg, options, mode: str | None = None,
                cache_dir=None) -> TrustedAnswer:
    """On a knowledge base's search hits (the evaluation's entry)."""
    passages = [Passage.from_hit(h, i + 1) for i, h in enumerate(hits)]
    return answer_on(question, passages, embedder, llm, prompts, cfg, options, mode, cache_dir=cache_dir)


def answer_passages(prepared, embedder, llm, prompts, cfg, options, mode: str | None = None,
                    on_evidence=None) -> TrustedAnswer:
    """On the passages ``ask`` retrieved (a :class:`pipeline.ask.Prepared`)."""
    passages = [Passage.from_citation(c) for c in prepared.citations]
    return answer_on(prepared.question, passages, embedder, llm, prompts, cfg, options, mode, on_evidence,
                     already_s=prepared.timings.get("retrieve_s", 0.0), question_vector=prepared.query_vector)
