"""`syllabus summarize-many`: several books or recordings summarized with one model, up to
``llm.concurrency`` at once over a served model (vLLM, any OpenAI-compatible server)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def summarize_many(
    sources: List[str] = typer.Argument(..., help="PDFs, recordings or knowledge-base documents (path, file name, title or id).", show_default=False),
    output_dir: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the Markdown summaries (<name>-summary.md each)."),
    level: Optional[str] = typer.Option(None, "--level", help="chapter, section, or a table-of-contents depth (default: summarize.level)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, max=256, help="Books at once (default: llm.concurrency; 1 for a local model)."),
    as_json: bool = typer.Option(False, "--json", help="Print each book's units, coverage and counts as JSON."),
) -> None:
    """Summarize a shelf of books, several at once over a served model.

    With the openai backend (vLLM, llama.cpp server, another machine's `syllabus serve`), up to
    llm.concurrency books are summarized at once, each keeping one request open, so the server
    batches them. A local model takes them one at a time. Every model call is cached, as with
    `summarize`.

    Examples:
      syllabus summarize-many books/*.pdf -o summaries/
      syllabus -c cluster.yaml summarize-many books/*.pdf -o summaries/ --concurrency 16
    """
    from syllabus_common.atomic import atomic_write_text
    from pipeline.api import summarize_many as summarize_books
    from pipeline.summarize import render_markdown
    from pipeline.ui import STATE, emit_json, note

    cfg = STATE.config()
    if concurrency is not None:
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"concurrency": concurrency})})
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def done(book) -> None:
        out = output_dir / f"{Path(book.source or book.title).stem}-summary.md"
        atomic_write_text(out, render_markdown(book))
        written[book.source or book.title] = out
        if not as_json:
            note(f"{book.title}: {book.coverage_line}; {book.model_calls} model calls, {book.cache_hits} from cache, "
                 f"{book.seconds:.1f} s → {out}")

    books = summarize_books(sources, cfg, STATE.kb_path(), level=level, on_done=done)
    if as_json:
        emit_json({"books": [dict(b.as_dict(), output=str(written[b.source or b.title])) for b in books]})


def register(app: typer.Typer) -> None:
    app.command("summarize-many")(summarize_many)
