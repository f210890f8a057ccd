"""Answers from the knowledge base with numbered citations to pages (or lecture times).

hybrid retrieval → confidence check → passages packed into the model's context (its own tokens,
room left for the answer) → ``prompts/<lang>/answer.txt`` → streamed answer citing ``[n]``. Each
``[n]`` maps to a passage: document, printed page label (physical page too), section, or mm:ss–mm:ss
for a transcript. When no passage is close enough to the question, no model is asked: the reply says
it was not found, in the question's language, and lists the closest passages.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from syllabus_common.places import locate
from pipeline.llm.base import LLM, TextStream
from pipeline.packing import DoesNotFit, fit_prompt
from pipeline.prompting import PromptSet, detect_language
from syllabus_common.timefmt import span as time_span

_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


@dataclass
class Citation:
    n: int
    doc: str  # title
    path: str
    page_label: str | None  # printed label of the first page ("12", "iv")
    page: int | None  # physical page (1-based)
    page_end: int | None
    page_label_end: str | None
    section: str
    time: str | None  # "mm:ss–mm:ss" for transcripts
    text: str  # the passage as given to the model (perhaps trimmed to fit)
    similarity: float  # cosine of question and passage embeddings
    cited: bool = False  # the answer refers to [n]
    doc_kind: str = ""  # pdf, media, epub, pptx, ...
    chunk_kind: str | None = None  # None: the document's own text; "ocr" or "slide"
    t_start: float | None = None
    t_end: float | None = None
    para_start: int | None = None  # paragraph numbers, in formats without pages
    para_end: int | None = None

    @property
    def where(self) -> str:
        where = locate(self.doc_kind, self.page, self.page_end, self.page_label, self.page_label_end, self.t_start,
                       self.t_end, self.chunk_kind, self.para_start, self.para_end)
        return where or self.time or ""

    @property
    def heading(self) -> str:
        """The section's own title; empty when it is only a time window ("00:00–01:02"), which
        ``where`` already says."""
        from syllabus_common.timefmt import own_heading

        return own_heading(self.section)


@dataclass
class Prepared:
    question: str
    language: str
    found: bool
    messages: list[dict]
    citations: list[Citation]  # the passages in the prompt, numbered; or the closest ones when not found
    context_tokens: int
    best_similarity: float
    timings: dict = field(default_factory=dict)
    query_vector: object = None  # (dim,) float32, the question embedded once for search and evidence


@dataclass
class Answer:
    question: str
    answer: str
    found: bool
    language: str
    citations: list[Citation]
    timings: dict
    model: dict
    prompt_tokens: int = 0
    completion_tokens: int = 0
    best_similarity: float = 0.0
    # The prompt as the model saw it, and its passage tokens; not part of as_dict() unless asked.
    messages: list[dict] = field(default_factory=list, repr=False)
    context_tokens: int = 0
    # Evidence first (pipeline.trusted): the mode used, the evidence sentences with their citations,
    # a verdict per generated sentence, the note shown when the evidence stands alone.
    mode: str = ""
    evidence: list[dict] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    note: str = ""
    faithfulness: str = ""

    @property
    def passages(self) -> list[str]:
        """The passages given to the model (or the closest ones when not found), in citation order."""
        return [c.text for c in self.citations]

    @property
    def cited(self) -> list[Citation]:
        return [c for c in self.citations if c.cited]

    def as_dict(self, messages: bool = False) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("messages", "context_tokens")}
        data["citations"] = [dict(asdict(c), where=c.where) for c in self.citations]
        if messages:
            data["messages"] = self.messages
        return data


def format_passage(c: Citation) -> str:
    head = f"[{c.n}] {c.doc}"
    if c.where:
        head += f", {c.where}"
    if c.heading:
        head += f" — {c.heading}"
    return f"{head}\n{c.text.strip()}"


def prepare(kb, llm: LLM, prompts: PromptSet, cfg, question: str, k: int | None = None,
            docs: list[str] | None = None, max_new_tokens: int | None = None) -> Prepared:
    question = " ".join(question.split())
    timings: dict = {}
    t0 = time.perf_counter()
    if kb.cfg.retrieval.rerank.method == "llm" or kb.cfg.retrieval.expand.method != "none":
        from pipeline.kb.search import share_llm  # the search's own config decides

        share_llm(kb, llm)  # the answering model re-ranks or expands too: loaded once
    query_vector = kb.embed_query(question)  # once: for the search and for the confidence check
    hits = kb.search(question, k=k or cfg.retrieval.k, docs=docs, query_vector=query_vector)
    timings["retrieve_s"] = round(time.perf_counter() - t0, 4)
    sims = kb.similarities(query_vector, [h.chunk_id for h in hits])
    best = max(sims, default=0.0)
    language = detect_language(question)
    citations = [
        Citation(
            n=i + 1, doc=h.title, path=h.path, page_label=h.page_label, page=h.page_start, page_end=h.page_end,
            page_label_end=h.page_label_end, section=h.section, time=time_span(h.t_start, h.t_end) if h.t_start is not None else None,
            text=h.text, similarity=round(s, 4), doc_kind=h.kind, chunk_kind=h.chunk_kind, t_start=h.t_start,
            t_end=h.t_end, para_start=h.para_start, para_end=h.para_end,
        )
        for i, (h, s) in enumerate(zip(hits, sims))
    ]
    if not hits or best < cfg.ask.min_similarity:
        return Prepared(question, language, False, prompts.render("not_found", language, question=question),
                        citations, 0, best, timings)
    t1 = time.perf_counter()
    reserve = max_new_tokens or cfg.llm.max_new_tokens

    def build(passages: list[str]) -> list[dict]:
        return prompts.render("answer", language, question=question, passages="\n\n".join(passages))

    blocks = [format_passage(c) for c in citations]
    messages, used = fit_prompt(build, blocks, llm.count_chat_tokens, llm.count_tokens, llm.context_length, reserve,
                                cap=cfg.ask.context_tokens)
    if not used:
        raise DoesNotFit(
            f"the model's context of {llm.context_length} tokens leaves no room for a passage after the instructions, "
            f"the question and {reserve} answer tokens; raise llm.context or lower llm.max_new_tokens"
        )
    kept = citations[: len(used)]
    for c, block in zip(kept, used):
        if block != blocks[c.n - 1]:  # the last passage was trimmed to fit: cite what the model saw
            c.text = block.split("\n", 1)[1] if "\n" in block else ""
    timings["pack_s"] = round(time.perf_counter() - t1, 4)
    return Prepared(question, language, True, messages, kept, sum(llm.count_tokens(b) for b in used), best, timings, query_vector)


def cited_numbers(text: str) -> set[int]:
    """Numbers the answer cites: [1], [2, 3], [4; 5]."""
    found: set[int] = set()
    for m in _CITE.finditer(text):
        found.update(int(x) for x in re.split(r"\s*[,;]\s*", m.group(1)))
    return found


def finish(prepared: Prepared, text: str, stream: TextStream | None, llm: LLM, started: float,
           stream_started: float | None = None) -> Answer:
    """The answer with citation flags and timings (seconds from ``started``, the question's arrival)."""
    text = text.strip()
    if prepared.found:
        numbers = cited_numbers(text)
        for c in prepared.citations:
            c.cited = c.n in numbers
    timings = dict(prepared.timings)
    stats = stream.stats if stream is not None else None
    if stats is not None:
        offset = (stream_started - started) if stream_started is not None else 0.0
        timings["first_token_s"] = round(offset + stats.first_token_s, 4) if stats.first_token_s is not None else None
        timings["generate_s"] = round(stats.seconds, 4)
        if stats.decode_tokens_per_s:
            timings["decode_tokens_per_s"] = round(stats.decode_tokens_per_s, 1)
    timings["total_s"] = round(time.perf_counter() - started, 4)
    return Answer(
        question=prepared.question, answer=text, found=prepared.found, language=prepared.language,
        citations=prepared.citations, timings=timings, model=llm.describe(),
        prompt_tokens=stats.prompt_tokens if stats else 0, completion_tokens=stats.completion_tokens if stats else 0,
        best_similarity=round(prepared.best_similarity, 4), messages=prepared.messages,
        context_tokens=prepared.context_tokens,
    )


def not_found_text(prepared: Prepared) -> str:
    return prepared.messages[-1]["content"]


def answer(kb, llm: LLM, question: str, k: int | None = None, docs: list[str] | None = None,
           max_new_tokens: int | None = None, prompts: PromptSet | None = None, cfg=None,
           on_delta: Callable[[str], None] | None = None,
           on_context: Callable[[Prepared], None] | None = None,
           on_evidence: Callable | None = None, mode: str | None = None, show_unsupported: bool = False) -> Answer:
    """Answer ``question`` from the knowledge base ``kb`` with ``llm``: evidence first, then the
    ``mode``'s answer (``ask.mode``: auto | extractive | generative), every generated sentence
    checked against the evidence it cites (:mod:`pipeline.trusted`).

    ``on_evidence(trusted)`` sees the evidence before the model is asked; the checked answer goes
    through ``on_delta(text)`` once (not called when nothing was found: no model is asked then);
    ``on_context(prepared)`` sees the passages. ``show_unsupported`` keeps unsupported sentences,
    marked. ``cfg``: default the knowledge base's. Timings count from this call (load the models
    before it)."""
    from pipeline.llm import options_from_config
    from pipeline.prompting import load_prompts
    from pipeline.trusted import answer_passages

    cfg = cfg or kb.cfg
    prompts = prompts or load_prompts(cfg)
    started = time.perf_counter()
    every = cfg.model_copy(update={"ask": cfg.ask.model_copy(update={"context_tokens": 0})})  # evidence reads all hits
    prepared = prepare(kb, llm, prompts, every, question, k=k, docs=docs, max_new_tokens=max_new_tokens)
    if on_context is not None:
        on_context(prepared)
    if not prepared.found:
        result = finish(prepared, not_found_text(prepared), None, llm, started)
        result.timings["load_s"] = getattr(llm, "load_seconds", None)
        return result
    options = options_from_config(cfg.llm, max_new_tokens=max_new_tokens)
    trusted = answer_passages(prepared, kb.embedder, llm, prompts, cfg, options, mode, on_evidence)
    text = trusted.body(show_unsupported)
    if on_delta is not None and text:
        on_delta(text)
    result = finish(prepared, text, None, llm, started)
    cited = {e.passage for e in trusted.evidence if e.n in trusted.cited}
    for c in result.citations:
        c.cited = c.n in cited
    result.mode, result.note, result.faithfulness = trusted.mode, trusted.note, trusted.faithfulness.line
    result.evidence = [e.as_dict() for e in trusted.evidence]
    result.verdicts = [v.as_dict() for v in trusted.verdicts]
    result.timings.update(trusted.timings)
    result.timings["first_token_s"] = trusted.timings.get("evidence_at_s")
    result.timings["load_s"] = getattr(llm, "load_seconds", None)
    return result
