"""`syllabus summarize`: a chapter-by-chapter summary of a PDF or a knowledge-base document."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def _extent(doc) -> str:
    if doc.kind == "media":
        from syllabus_common.timefmt import clock

        return clock(max((s.t_end or 0.0 for s in doc.sections), default=0.0))
    from syllabus_common.places import extent

    paras = max((getattr(s, "para", None) or 0 for s in getattr(doc, "spans", ())), default=0)
    return extent(doc.kind, doc.n_pages, paras) or f"{doc.n_pages} pages"


def summarize(
    source: str = typer.Argument(..., help="A PDF, a lecture recording, or a document in the knowledge base (path, file name, title or id)."),
    level: Optional[str] = typer.Option(None, "--level", help="chapter, section, or a table-of-contents depth (default: summarize.level)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the Markdown here instead of to stdout."),
    mode: Optional[str] = typer.Option(None, "--mode", help="auto, extractive (key points only) or generative (key points, then checked prose); default: summarize.mode."),
    as_json: bool = typer.Option(False, "--json", help="Print units with key points (pages), prose, verdicts, coverage and counts as JSON."),
) -> None:
    """Summarize a book chapter by chapter (page ranges), or a lecture window by window (time ranges).

    Each part gets its key points: its own sentences, verbatim, each with its page (slide, location
    or mm:ss), chosen to cover it. An able model then rewrites them as prose; every prose sentence is
    checked against the points it cites and dropped when unsupported. The whole book gets an overview
    built the same way, then a coverage line and a faithfulness line (claims checked / dropped).

    A recording is transcribed first (or its transcript is taken from the knowledge base or the
    transcript cache), in the time windows `ingest` uses (asr.section_seconds). Every model call is
    cached in the knowledge base (or the user cache), so an interrupted run resumes where it stopped
    and a re-run is instant.

    Examples:
      syllabus summarize book.pdf -o book-summary.md
      syllabus summarize book.pdf --level section
      syllabus summarize book.pdf --mode extractive   # key points with pages only, no model
      syllabus --kb ~/kb summarize R-intro.pdf --json
      syllabus summarize lecture.mp4 -o lecture-summary.md
    """
    from syllabus_common.atomic import atomic_write_text
    from syllabus_common.errors import ConfigError
    from pipeline.api import summarize as summarize_source
    from pipeline.summarize import render_markdown
    from pipeline.ui import STATE, bars, check_mode, emit_json, note

    cfg = STATE.config()
    check_mode(mode)
    if level is not None:
        try:
            cfg.summarize.level = level  # validated like the config key
        except Exception:
            raise ConfigError(f"--level must be chapter, section or a table-of-contents depth 1-9, not {level!r}") from None
    kb_path = STATE.kb_path()
    quiet = STATE.quiet or as_json

    def planned(doc, units) -> None:
        if not quiet:
            note(f"{doc.title}: {len(units)} parts, {_extent(doc)} ({doc.outline_source})")

    with bars(quiet=quiet) as progress:
        book = summarize_source(source, cfg, kb_path, progress=progress, notify=note, on_plan=planned, mode=mode)
    markdown = render_markdown(book)
    if output is not None:
        atomic_write_text(output, markdown)
    if as_json:
        emit_json(dict(book.as_dict(), output=str(output) if output else None))
    elif output is None:
        sys.stdout.write(markdown)  # not through Rich: it would wrap long lines at the terminal width
    if not quiet:
        where = f" → {output}" if output else ""
        note(f"{book.coverage_line}; {book.faithfulness.line}; {book.model_calls} model calls, {book.cache_hits} from cache, "
             f"{book.seconds:.1f} s{where}")


def register(app: typer.Typer) -> None:
    app.command()(summarize)
