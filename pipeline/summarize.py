"""Chapter-by-chapter summaries with provenance: key points with their pages, then checked prose.

For each unit (chapter, section or page window, see :mod:`pipeline.outline`; a time window of a
lecture) the summary is :func:`pipeline.digest.digest_unit`: the unit's key sentences, verbatim, each
with its page label (``slide 12`` in a deck, ``loc. 12`` in an e-book, mm:ss in a lecture), chosen
to cover the unit; then, when the model writes (``summarize.mode``), a short prose rewrite of those
points in which every sentence is checked by :mod:`pipeline.verify` against the points it cites (or
the unit's text) and dropped when unsupported or when it repeats the prompt. The whole-document
overview is built the same way from the units' key points. The faithfulness line counts the prose
sentences checked and dropped; the coverage line the pages whose text went into some unit.

Each model call's result is cached (:mod:`pipeline.sumcache`), so an interrupted run resumes and a
re-run is instant. Nothing is truncated: a prompt that does not fit the context is written from
fewer points.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from syllabus_common.places import located, place
from pipeline.digest import Digest, digest_overview, digest_unit, document_terms
from pipeline.llm.base import LLM, GenerationOptions
from pipeline.outline import DocText, Unit, depth_of, plan_units
from pipeline.prompting import PromptSet, detect_language
from pipeline.sumcache import SummaryCache, cache_key
from pipeline.progress import Progress
from pipeline.verify import Faithfulness

log = logging.getLogger(__name__)


@dataclass
class UnitSummary:
    title: str
    where: str  # "pp. 12–19", "slides 3–5", "loc. 4–9", "12:31–17:31"
    page_start: int | None
    page_end: int | None
    page_label_start: str
    page_label_end: str
    t_start: float | None
    t_end: float | None
    digest: Digest
    pages: list[int] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The unit's summary as Markdown: numbered key points with their places, then the prose."""
        return self.digest.markdown

    def as_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "digest"}
        return dict(data, **self.digest.as_dict())


@dataclass
class BookSummary:
    title: str
    source: str | None
    language: str
    outline_source: str
    units: list[UnitSummary]
    overview: Digest
    pages_covered: int  # pages whose text went into some unit
    pages_total: int  # 0 for a recording
    pages_without_text: int  # no text layer: nothing to summarize there
    model: dict  # backend, model, precision
    mode: str  # "generative": key points and checked prose; "extractive": key points only
    faithfulness: Faithfulness = field(default_factory=Faithfulness)
    model_calls: int = 0  # not counting cached results
    cache_hits: int = 0
    seconds: float = 0.0  # wall time
    kind: str | None = None  # the document's format: pdf, epub, pptx, media, md, ...

    @property
    def coverage_line(self) -> str:
        if self.pages_total == 0:  # a transcript: no pages
            return f"sections summarized: {len(self.units)}/{len(self.units)}"
        line = f"pages summarized: {self.pages_covered}/{self.pages_total}"
        if self.pages_without_text:
            line += f" ({self.pages_without_text} without a text layer)"
        return line

    def as_dict(self) -> dict:
        keep = ("title", "source", "language", "outline_source", "pages_covered", "pages_total", "pages_without_text",
                "model", "mode", "model_calls", "cache_hits", "seconds")
        return dict({k: getattr(self, k) for k in keep}, units=[u.as_dict() for u in self.units],
                    overview=self.overview.as_dict(), coverage=self.coverage_line,
                    faithfulness=dict(asdict(self.faithfulness), line=self.faithfulness.line))


def where(label_start: str, label_end: str, t_start: float | None = None, t_end: float | None = None,
          doc_kind: str | None = None, page_start: int | None = None, page_end: int | None = None) -> str:
    """A unit's range as its document names places: ``pp. 12–19``, ``slides 3–5``, ``12:31–17:31``."""
    return located(place(label=label_start, label_end=label_end, t_start=t_start, t_end=t_end), doc_kind, None,
                   page_start, page_end)


class Summarizer:
    """``write``: whether the model writes prose on the key points ("generative") or the key points
    are the summary ("extractive", no model call)."""

    def __init__(self, llm: LLM, prompts: PromptSet, cache: SummaryCache, scfg, options: GenerationOptions,
                 embedder, progress: Progress | None = None, write: bool = True):
        self.llm = llm
        self.prompts = prompts
        self.cache = cache
        self.scfg = scfg
        self.options = options
        self.embedder = embedder
        self.progress = progress or Progress()
        self.write = write
        self.calls = 0
        self.hits = 0
        info = llm.describe()
        self._model_id = {k: info.get(k) for k in ("backend", "model", "precision")}

    def plan(self, doc: DocText, level: str | None = None) -> list[Unit]:
        s = self.scfg
        return plan_units(doc, depth_of(level or s.level), self.llm.count_tokens, s.min_tokens, s.max_pages, s.window_pages)

    def run(self, doc: DocText, units: list[Unit]) -> BookSummary:
        started = time.perf_counter()
        largest = max(units, key=lambda u: len(u.text))
        language = detect_language(largest.text[:4000])
        words = self.prompts.document_words(language, doc.kind)
        faith = Faithfulness()
        background = document_terms(doc)  # once per document: what makes a unit's terms its own
        self.progress.stage("summarizing", len(units) + 1)
        results: list[UnitSummary] = []
        for unit in units:
            range_ = self._where(unit, doc)
            d = digest_unit(unit, doc, self.embedder, self.prompts, language, self._writer(doc, self.scfg.summary_tokens),
                            faith, background=background, title=unit.title, pages=range_, **words)
            results.append(UnitSummary(
                title=unit.title, where=range_, page_start=unit.page_start, page_end=unit.page_end,
                page_label_start=doc.label(unit.page_start), page_label_end=doc.label(unit.page_end),
                t_start=unit.t_start, t_end=unit.t_end, digest=d, pages=sorted(unit.pages)))
            self.progress.advance(1)
        whole = where(doc.label(1), doc.label(doc.n_pages), doc_kind=doc.kind, page_start=1,
                      page_end=doc.n_pages) if doc.n_pages else ""
        overview = digest_overview([u.digest for u in results], self.embedder, self.prompts, language,
                                   self._writer(doc, self.scfg.book_tokens), faith, k=self.scfg.overview_points,
                                   title=doc.title, pages=whole, **words)
        self.progress.advance(1)
        covered = set().union(*(set(u.pages) for u in units)) if units else set()
        return BookSummary(
            title=doc.title, source=doc.path, language=language, outline_source=doc.outline_source, units=results,
            kind=doc.kind,
            overview=overview, pages_covered=len(covered), pages_total=doc.n_pages,
            pages_without_text=doc.n_pages - len(doc.pages_with_text), model=self.llm.describe(),
            mode="generative" if self.write else "extractive", faithfulness=faith,
            model_calls=self.calls, cache_hits=self.hits, seconds=round(time.perf_counter() - started, 3),
        )

    def _writer(self, doc: DocText, max_new_tokens: int) -> Callable[[list[dict]], str | None] | None:
        if not self.write:
            return None
        return lambda messages: self._call("key_points", messages, max_new_tokens, doc)

    def _call(self, kind: str, messages: list[dict], max_new_tokens: int, doc: DocText) -> str | None:
        """The model's text for ``messages`` (cached); None when the prompt and the answer do not fit."""
        options = GenerationOptions(
            max_new_tokens=max_new_tokens, temperature=self.options.temperature, top_p=self.options.top_p,
            repetition_penalty=self.options.repetition_penalty, seed=self.options.seed,
        )
        key = cache_key(self._model_id, asdict(options), messages)
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        if self.llm.count_chat_tokens(messages) + max_new_tokens > self.llm.context_length:  # never truncate
            return None
        t0 = time.perf_counter()
        text = self.llm.generate(messages, options).text.strip()
        self.calls += 1
        self.cache.put(key, kind, text, doc.identity, time.perf_counter() - t0)
        return text

    def _where(self, unit: Unit, doc: DocText) -> str:
        return where(doc.label(unit.page_start), doc.label(unit.page_end), unit.t_start, unit.t_end, doc.kind,
                     unit.page_start, unit.page_end)


def render_markdown(book: BookSummary) -> str:
    """Per unit a heading with its range, its numbered key points with their places, its checked
    prose; the whole document the same way; then the coverage and faithfulness lines."""
    model = book.model
    writer = (f"key points with their places; prose by {model.get('model')} ({model.get('backend')}, "
              f"{model.get('precision', '?')}), every sentence checked against them" if book.mode == "generative"
              else "key points with their places (no model prose: summarize.mode is extractive or the model is not able)")
    source = "table of contents" if book.outline_source == "toc" else book.outline_source
    lines = [f"# {book.title}", "", f"_Summary: {writer}; {len(book.units)} parts from the {source}._", ""]
    for u in book.units:
        if u.t_start is not None and u.page_start is None:  # a lecture's time window: its spoken range,
            heading = f"## {u.title}" if " · " in (u.title or "") else f"## {u.where}"  # with its slides' titles
        else:
            heading = f"## {u.title}" + (f" ({u.where})" if u.where else "")
        lines += [heading, "", u.summary or "_(no sentences to summarize)_", ""]
    whole = {"media": "Whole lecture", "pptx": "Whole deck", "pdf": "Whole book", "epub": "Whole book",
             "mobi": "Whole book", "fb2": "Whole book"}.get(book.kind, "Whole document")
    lines += [f"## {whole}", "", book.overview.markdown or "_(no sentences to summarize)_", "", "---", "",
              book.coverage_line, book.faithfulness.line, ""]
    return "\n".join(lines)


def summarize(source, cfg, kb_path: Path | None = None, llm: LLM | None = None, level: str | None = None,
              progress: Progress | None = None, notify: Callable[[str], None] | None = None,
              on_plan: Callable[[DocText, list[Unit]], None] | None = None, cache_dir: Path | None = None,
              embedder=None, mode: str | None = None) -> BookSummary:
    """Summarize a PDF, a recording or a knowledge-base document (see :func:`pipeline.sources.document_for`)
    chapter by chapter or window by window. Model calls are cached in the KB's ``cache/`` (or the user
    cache), so a re-run is instant and an interrupted one resumes. ``llm``: default the configured model;
    ``level``: default ``summarize.level``; ``mode``: default ``summarize.mode`` (auto: prose when the
    model passes the measured self-check of :mod:`pipeline.ability`); ``on_plan(doc, units)`` is called
    before the first model call; ``cache_dir``: where model calls are cached (default the KB's
    ``cache/``, else the user cache); ``embedder``: default the configured one."""
    from syllabus_common.models import user_cache_dir
    from pipeline.ability import resolve_mode
    from pipeline.llm import options_from_config
    from pipeline.onnx_embed import embedder_for
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
    options = options_from_config(cfg.llm)
    chosen = resolve_mode(mode or cfg.summarize.mode, llm, prompts, options, user_cache_dir())
    cache = SummaryCache(cache_dir or ((kb_path / "cache") if kb_path is not None else user_cache_dir()))
    try:
        summarizer = Summarizer(llm, prompts, cache, cfg.summarize, options, embedder or embedder_for(cfg), progress,
                                write=chosen == "generative")
        units = summarizer.plan(doc)
        if on_plan is not None:
            on_plan(doc, units)
        return summarizer.run(doc, units)
    finally:
        cache.close()
