"""Chapter-by-chapter summaries of a whole book: hierarchical map-reduce that fits the context window.

For each unit (chapter, section or page window, see :mod:`pipeline.outline`):

1. map: its text is cut into pieces that fit the map prompt (the model's tokens, leaving room for the
   summary) and each piece is summarized;
2. reduce: the piece summaries are merged in groups that fit the reduce prompt, again and again until
   one is left.

Then the unit summaries are merged the same way into a whole-book overview. No step truncates its
input: text that does not fit is split, and a window too small to merge two summaries is an error.
Each call's result is cached (:mod:`pipeline.sumcache`), so an interrupted run resumes and a re-run is
instant.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from syllabus_common.places import place
from pipeline.llm.base import LLM, GenerationOptions
from pipeline.outline import DocText, Unit, depth_of, plan_units
from pipeline.packing import DoesNotFit, group_to_fit, split_to_fit
from pipeline.prompting import PromptSet, detect_language
from pipeline.sumcache import SummaryCache, cache_key
from pipeline.progress import Progress

log = logging.getLogger(__name__)

MARGIN = 16  # tokens kept free in every prompt for page strings and tokenization at the joins


@dataclass
class Piece:
    text: str
    page_start: int | None
    page_end: int | None


@dataclass
class UnitSummary:
    title: str
    page_start: int | None
    page_end: int | None
    page_label_start: str
    page_label_end: str
    t_start: float | None
    t_end: float | None
    summary: str
    pieces: int
    input_tokens: int
    pages: list[int] = field(default_factory=list)

    @property
    def where(self) -> str:
        return where(self.page_label_start, self.page_label_end, self.t_start, self.t_end)


@dataclass
class BookSummary:
    title: str
    source: str | None
    language: str
    outline_source: str
    units: list[UnitSummary]
    overview: str
    pages_covered: int  # pages whose text went into some unit
    pages_total: int  # 0 for a recording
    pages_without_text: int  # no text layer: nothing to summarize there
    model: dict  # backend, model, precision
    model_calls: int = 0  # cached calls included
    cache_hits: int = 0
    seconds: float = 0.0  # wall time

    @property
    def coverage_line(self) -> str:
        if self.pages_total == 0:  # a transcript: no pages
            return f"sections summarized: {len(self.units)}/{len(self.units)}"
        line = f"pages summarized: {self.pages_covered}/{self.pages_total}"
        if self.pages_without_text:
            line += f" ({self.pages_without_text} without a text layer)"
        return line

    def as_dict(self) -> dict:
        data = asdict(self)
        data["coverage"] = self.coverage_line
        for unit, row in zip(self.units, data["units"]):
            row["where"] = unit.where  # "p. 12–19" or "12:31–17:31", as the Markdown headings show it
        return data


def where(label_start: str, label_end: str, t_start: float | None = None, t_end: float | None = None) -> str:
    return place(label=label_start, label_end=label_end, t_start=t_start, t_end=t_end)


class Summarizer:
    def __init__(self, llm: LLM, prompts: PromptSet, cache: SummaryCache, scfg, options: GenerationOptions,
                 progress: Progress | None = None):
        self.llm = llm
        self.prompts = prompts
        self.cache = cache
        self.scfg = scfg
        self.options = options
        self.progress = progress or Progress()
        self.calls = 0
        self.hits = 0
        self._planned = 0
        self._kind = "pdf"  # set from the document being summarized: picks {kind}/{parts} in the prompts
        info = llm.describe()
        self._model_id = {k: info.get(k) for k in ("backend", "model", "precision")}

    # ----- planning
    def plan(self, doc: DocText, level: str | None = None) -> list[Unit]:
        s = self.scfg
        return plan_units(doc, depth_of(level or s.level), self.llm.count_tokens, s.min_tokens, s.max_pages, s.window_pages)

    def _render(self, task: str, language: str, **values: str) -> list[dict]:
        return self.prompts.render(task, language, **{**self.prompts.document_words(language, self._kind), **values})

    def _room(self, task: str, reserve: int, language: str, **values: str) -> int:
        """Tokens left for the variable part of a ``task`` prompt once its fixed part and the answer fit."""
        empty = self._render(task, language, **values)
        room = self.llm.context_length - reserve - self.llm.count_chat_tokens(empty) - MARGIN
        if room < 64:
            raise DoesNotFit(
                f"the model's context of {self.llm.context_length} tokens leaves only {room} for the {task} step "
                f"after its instructions and {reserve} answer tokens; raise llm.context or lower summarize.summary_tokens"
            )
        return room

    def pieces(self, unit: Unit, doc: DocText, language: str) -> list[Piece]:
        """The unit's text in consecutive pieces that each fit the map prompt, with their pages."""
        self._kind = doc.kind
        room = self._room("map", self.scfg.summary_tokens, language, text="", title=unit.title, pages=self._where(unit, doc), book=doc.title)
        limit = min(self.scfg.chunk_tokens, room)
        count = self.llm.count_tokens
        out: list[Piece] = []
        text, pages, used = "", [], 0
        for span in unit.spans:
            body = span.text.strip()
            if not body:
                continue
            n = count(body)
            parts = [body] if n <= limit else split_to_fit(body, limit, count)
            for part in parts:
                m = n if len(parts) == 1 else count(part)
                if text and used + m + 2 > limit:
                    out.append(Piece(text, min(pages) if pages else None, max(pages) if pages else None))
                    text, pages, used = "", [], 0
                text = f"{text}\n\n{part}" if text else part
                used += m + 2
                if span.page is not None:
                    pages.append(span.page)
        if text:
            out.append(Piece(text, min(pages) if pages else None, max(pages) if pages else None))
        return out

    # ----- running
    def run(self, doc: DocText, units: list[Unit]) -> BookSummary:
        started = time.perf_counter()
        self._kind = doc.kind
        largest = max(units, key=lambda u: len(u.text))
        language = detect_language(largest.text[:4000])
        all_pieces = [self.pieces(u, doc, language) for u in units]
        self._planned = sum(len(p) + self._reduce_estimate(len(p)) for p in all_pieces) + 1 + self._reduce_estimate(len(units))
        self.progress.stage("summarizing", self._planned)
        results: list[UnitSummary] = []
        for unit, pieces in zip(units, all_pieces):
            label = self._where(unit, doc)
            maps = [
                self._call("map", self._render("map", language, text=p.text, title=unit.title, book=doc.title,
                                                      pages=self._where_piece(p, doc) or label), self.scfg.summary_tokens, doc)
                for p in pieces
            ]
            summary = self._merge(maps, "reduce", language, doc, title=unit.title, pages=label)
            results.append(UnitSummary(
                title=unit.title, page_start=unit.page_start, page_end=unit.page_end,
                page_label_start=doc.label(unit.page_start), page_label_end=doc.label(unit.page_end),
                t_start=unit.t_start, t_end=unit.t_end, summary=summary, pieces=len(pieces),
                input_tokens=sum(self.llm.count_tokens(p.text) for p in pieces), pages=sorted(unit.pages),
            ))
        overview = self._book(results, language, doc)
        covered = set().union(*(set(u.pages) for u in units)) if units else set()
        return BookSummary(
            title=doc.title, source=doc.path, language=language, outline_source=doc.outline_source, units=results,
            overview=overview, pages_covered=len(covered), pages_total=doc.n_pages,
            pages_without_text=doc.n_pages - len(doc.pages_with_text), model=self.llm.describe(),
            model_calls=self.calls, cache_hits=self.hits, seconds=round(time.perf_counter() - started, 3),
        )

    def _reduce_estimate(self, n: int) -> int:
        if n <= 1:
            return 0
        fan_in = max(2, self.scfg.chunk_tokens // (self.scfg.summary_tokens + MARGIN))
        return math.ceil((n - 1) / (fan_in - 1))

    def _call(self, kind: str, messages: list[dict], max_new_tokens: int, doc: DocText) -> str:
        options = GenerationOptions(
            max_new_tokens=max_new_tokens, temperature=self.options.temperature, top_p=self.options.top_p,
            repetition_penalty=self.options.repetition_penalty, seed=self.options.seed,
        )
        key = cache_key(self._model_id, asdict(options), messages)
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
            self.progress.advance(1, cached=1)
            return cached
        prompt_tokens = self.llm.count_chat_tokens(messages)
        if prompt_tokens + max_new_tokens > self.llm.context_length:  # planning guarantees this; never truncate
            raise DoesNotFit(f"{kind} prompt of {prompt_tokens} tokens + {max_new_tokens} does not fit {self.llm.context_length}")
        t0 = time.perf_counter()
        text = self.llm.generate(messages, options).text.strip()
        self.calls += 1
        self.cache.put(key, kind, text, doc.identity, time.perf_counter() - t0)
        self.progress.advance(1)
        return text

    def _merge(self, items: list[str], task: str, language: str, doc: DocText, final: str | None = None,
               final_tokens: int = 0, **values: str) -> str:
        """Merge summaries in groups that fit ``task``'s prompt until one is left (or, with ``final``, until
        they all fit one ``final`` prompt: the whole-book template)."""
        count = self.llm.count_tokens
        items = [i for i in items if i.strip()]
        while True:
            if not items:
                return ""
            if final is not None:
                joined = "\n\n".join(items)
                if count(joined) <= self._room(final, final_tokens, language, summaries="", **values):
                    return self._call(final, self._render(final, language, summaries=joined, **values), final_tokens, doc)
            elif len(items) == 1:
                return items[0]
            room = self._room(task, self.scfg.summary_tokens, language, summaries="", **values)
            if final is not None:
                room = min(room, self._room(final, final_tokens, language, summaries="", **values))
            # A summary longer than a prompt holds (large summary_tokens) is split, never cut.
            items = [part for i in items for part in (split_to_fit(i, room, count) if count(i) > room else [i])]
            groups = group_to_fit(items, room, count)
            if len(groups) == len(items):
                raise DoesNotFit(
                    f"the context of {self.llm.context_length} tokens cannot hold two summaries to merge; raise "
                    "llm.context or lower summarize.summary_tokens"
                )
            items = [
                self._call(task, self._render(task, language, summaries="\n\n".join(items[j] for j in g), **values),
                           self.scfg.summary_tokens, doc) if len(g) > 1 else items[g[0]]
                for g in groups
            ]

    def _book(self, units: list[UnitSummary], language: str, doc: DocText) -> str:
        items = [f"{u.where}:\n{u.summary}" if doc.kind == "media"  # a time window is named by its range
                 else f"{u.title} ({u.where}):\n{u.summary}" if u.where else f"{u.title}:\n{u.summary}" for u in units]
        return self._merge(items, "reduce", language, doc, final="book", final_tokens=self.scfg.book_tokens,
                           title=doc.title, pages=where(doc.label(1), doc.label(doc.n_pages)) if doc.n_pages else "")

    def _where(self, unit: Unit, doc: DocText) -> str:
        return where(doc.label(unit.page_start), doc.label(unit.page_end), unit.t_start, unit.t_end)

    def _where_piece(self, piece: Piece, doc: DocText) -> str:
        return where(doc.label(piece.page_start), doc.label(piece.page_end)) if piece.page_start is not None else ""


def render_markdown(book: BookSummary) -> str:
    lines = [f"# {book.title}", ""]
    model = book.model
    lines.append(f"_Summary by {model.get('model')} ({model.get('backend')}, {model.get('precision', '?')}); "
                 f"{len(book.units)} parts from the {'table of contents' if book.outline_source == 'toc' else book.outline_source}._")
    lines.append("")
    for u in book.units:
        if u.t_start is not None and u.page_start is None:  # a lecture's time window: its spoken range
            heading = f"## {u.where}"
        else:
            heading = f"## {u.title}" + (f" ({u.where})" if u.where else "")
        lines += [heading, "", u.summary or "_(the model returned no text)_", ""]
    whole = "Whole lecture" if book.pages_total == 0 else "Whole book"  # a transcript has no pages
    lines += [f"## {whole}", "", book.overview or "_(the model returned no text)_", "", "---", "", book.coverage_line, ""]
    return "\n".join(lines)


def summarize(source, cfg, kb_path: Path | None = None, llm: LLM | None = None, level: str | None = None,
              progress: Progress | None = None, notify: Callable[[str], None] | None = None,
              on_plan: Callable[[DocText, list[Unit]], None] | None = None, cache_dir: Path | None = None) -> BookSummary:
    """Summarize a PDF, a recording or a knowledge-base document (see :func:`pipeline.sources.document_for`)
    chapter by chapter or window by window. Model calls are cached in the KB's ``cache/`` (or the user
    cache), so a re-run is instant and an interrupted one resumes. ``llm``: default the configured model;
    ``level``: default ``summarize.level``; ``on_plan(doc, units)`` is called before the first model call;
    ``cache_dir``: where model calls are cached (default the KB's ``cache/``, else the user cache)."""
    from syllabus_common.models import user_cache_dir
    from pipeline.llm import options_from_config
    from pipeline.prompting import load_prompts
    from pipeline.sources import document_for, has_kb

    if level is not None:
        cfg = cfg.model_copy(update={"summarize": type(cfg.summarize).model_validate({**cfg.summarize.model_dump(), "level": level})})
    prompts = load_prompts(cfg)  # template errors surface before anything slow
    progress = progress or Progress()
    doc = document_for(source, cfg, kb_path, progress, notify)
    kb_path = Path(kb_path) if has_kb(kb_path) else None
    if llm is None:
        from pipeline.llm import load_model

        progress.stage(f"loading {cfg.llm.model} ({cfg.llm.backend})…", None)
        llm = load_model(cfg, kb_path, notify=notify)
    cache = SummaryCache(cache_dir or ((kb_path / "cache") if kb_path is not None else user_cache_dir()))
    try:
        summarizer = Summarizer(llm, prompts, cache, cfg.summarize, options_from_config(cfg.llm), progress)
        units = summarizer.plan(doc)
        if on_plan is not None:
            on_plan(doc, units)
        return summarizer.run(doc, units)
    finally:
        cache.close()
