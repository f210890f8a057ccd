"""`syllabus summarize`: a chapter-by-chapter summary of a PDF or a knowledge-base document."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from pipeline.summarize import Progress


class RichProgress(Progress):
    """One bar over model calls (cached ones count too) with ETA."""

    def __init__(self, console):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bars, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True)
        self.task = self.bars.add_task("summarizing", total=None)
        self.cached = 0

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc):
        self.bars.stop()

    def planned(self, total):
        self.bars.update(self.task, total=total)

    def advance(self, cached):
        self.cached += cached
        task = self.bars.tasks[0]
        if task.total is not None and task.completed + 1 > task.total:
            self.bars.update(self.task, total=task.completed + 1)  # the plan's reduce count is an estimate
        desc = f"summarizing ({self.cached} from cache)" if self.cached else "summarizing"
        self.bars.update(self.task, advance=1, description=desc)


def _extent(doc) -> str:
    if doc.kind == "media":
        from pipeline.timefmt import clock

        return clock(max((s.t_end or 0.0 for s in doc.sections), default=0.0))
    return f"{doc.n_pages} pages"


def _lecture(path: Path, cfg, kb_path: Path | None, quiet: bool):
    """A recording to summarize: the knowledge base's document when it holds this very file (same
    bytes), else its transcript from the cache, transcribed now (with progress) if there is none."""
    from pipeline.cli import err, note
    from pipeline.models import user_cache_dir
    from pipeline.outline import from_kb, from_media

    from pipeline.kb.store import sha256_file

    digest = sha256_file(path)  # once, for the KB lookup, the transcript cache and the summary cache
    if kb_path is not None:
        from pipeline.kb import KnowledgeBase

        with KnowledgeBase(cfg, kb_path) as kb:
            same = [d for d in kb.find_documents(str(path)) if d.kind == "media" and d.sha256 == digest]
            if len(same) == 1:
                return from_kb(kb, same[0])
    cache = (kb_path / "cache") if kb_path is not None else user_cache_dir()
    if quiet:
        return from_media(path, cfg, cache, notify=note, sha256=digest)
    from pipeline.commands.transcribe import AudioProgress

    with AudioProgress(err) as progress:
        progress.start(f"transcribing {path.name}")
        return from_media(path, cfg, cache, on_progress=progress.update, notify=note, sha256=digest)


def register(app: typer.Typer) -> None:
    @app.command()
    def summarize(
        source: str = typer.Argument(..., help="A PDF, a lecture recording, or a document in the knowledge base (path, file name, title or id)."),
        level: Optional[str] = typer.Option(None, "--level", help="chapter, section, or a table-of-contents depth (default: summarize.level)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the Markdown here instead of to stdout."),
        as_json: bool = typer.Option(False, "--json", help="Print units, summaries, coverage and counts as JSON."),
    ) -> None:
        """Summarize a book chapter by chapter (page ranges), or a lecture window by window (time ranges).

        A recording is transcribed first (or its transcript is taken from the knowledge base or the
        transcript cache), in the time windows `ingest` uses (asr.section_seconds).

        Long chapters are summarized in pieces that fit the model's context and merged; every model call
        is cached in the knowledge base (or the user cache), so an interrupted run resumes where it
        stopped and a re-run is instant.

        Examples:
          syllabus summarize book.pdf -o book-summary.md
          syllabus summarize book.pdf --level section
          syllabus --kb ~/kb summarize R-intro.pdf --json
          syllabus summarize lecture.mp4 -o lecture-summary.md
        """
        from pipeline.atomic import atomic_write_text
        from pipeline.cli import STATE, emit_json, err, note
        from pipeline.errors import ConfigError, KnowledgeBaseError
        from pipeline.llm import options_from_config
        from pipeline.models import user_cache_dir
        from pipeline.outline import from_kb, from_pdf
        from pipeline.prompting import load_prompts
        from pipeline.sumcache import SummaryCache
        from pipeline.summarize import Summarizer, render_markdown

        cfg = STATE.config()
        if level is not None:
            try:
                cfg.summarize.level = level  # validated like the config key
            except Exception:
                raise ConfigError(f"--level must be chapter, section or a table-of-contents depth 1-9, not {level!r}") from None
        prompts = load_prompts(cfg)
        kb_path = STATE.kb_path()
        has_kb = (kb_path / "catalog.sqlite").exists()
        path = Path(source).expanduser()
        if path.is_file():
            from ingest.media import is_media

            if is_media(path):
                doc = _lecture(path, cfg, kb_path if has_kb else None, quiet=STATE.quiet or as_json)
            else:
                doc = from_pdf(path, cfg.chunking.strip_headers)
        else:
            if not has_kb:
                raise KnowledgeBaseError(f"{source}: no such file, and no knowledge base at {kb_path} to look it up in")
            from pipeline.kb import KnowledgeBase

            with KnowledgeBase(cfg, kb_path) as kb:
                found = kb.find_document(
                    source, missing=f"{source}: no such file, and no document in {kb_path} matches; see `syllabus list`")
                doc = from_kb(kb, found, cfg.chunking.strip_headers)

        from pipeline.commands.llm import load_model

        llm = load_model(cfg, kb_path if has_kb else None)
        cache = SummaryCache((kb_path / "cache") if has_kb else user_cache_dir())
        try:
            if STATE.quiet or as_json:
                summarizer = Summarizer(llm, prompts, cache, cfg.summarize, options_from_config(cfg.llm))
                units = summarizer.plan(doc)
                book = summarizer.run(doc, units)
            else:
                with RichProgress(err) as progress:
                    summarizer = Summarizer(llm, prompts, cache, cfg.summarize, options_from_config(cfg.llm), progress)
                    units = summarizer.plan(doc)
                    note(f"{doc.title}: {len(units)} parts, {_extent(doc)} ({doc.outline_source})")
                    book = summarizer.run(doc, units)
        finally:
            cache.close()
        markdown = render_markdown(book)
        if output is not None:
            atomic_write_text(output, markdown)
        if as_json:
            emit_json(dict(book.as_dict(), output=str(output) if output else None))
        elif output is None:
            sys.stdout.write(markdown)  # not through Rich: it would wrap long lines at the terminal width
        if not STATE.quiet and not as_json:
            where = f" → {output}" if output else ""
            note(f"{book.coverage_line}; {book.model_calls} model calls, {book.cache_hits} from cache, {book.seconds:.1f} s{where}")
