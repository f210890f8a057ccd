"""Knowledge-base commands: ingest, list, search, remove."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer


def _outcome_line(o) -> str:
    name = Path(o.path).name
    if o.status == "failed":
        return f"[red]✗[/] {o.message}"
    if o.status in ("unchanged", "duplicate"):
        return f"[dim]= {name}: {o.message}, skipped[/]"
    extra = "".join(f"\n  [yellow]![/] {w}" for w in o.warnings)
    if o.seconds is not None:
        from syllabus_common.timefmt import clock, duration

        length = clock(o.seconds) if o.seconds >= 60 else duration(o.seconds)
        return f"[green]✓[/] {name}: {o.status}, {length} of audio, {o.chunks} chunks{extra}"
    return f"[green]✓[/] {name}: {o.status}, {o.pages} pages, {o.chunks} chunks{extra}"


def ingest(
    files: List[Path] = typer.Argument(..., help="PDFs, e-books (epub, mobi, fb2, xps, cbz), pptx, docx, md, html, txt, audio or video files (or folders of them) to add or update.", show_default=False),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Do the files' work on a Ray cluster (auto, HOST:PORT, ray://HOST:10001); alone: a Ray instance on this machine. Needs pip install 'syllabus[ray]'."),
    as_json: bool = typer.Option(False, "--json", help="Print outcomes as JSON."),
) -> None:
    """Add files to the knowledge base; unchanged files are skipped, changed ones replaced.

    Audio and video files (mp4, mkv, webm, mov, mp3, m4a, wav, flac, ogg, ...) are transcribed
    with the asr settings (or their cached transcript is reused) and indexed in time windows, so
    hits cite times such as 12:31–13:05; the slides a video shows are found, read by OCR and
    indexed with their time ranges. Pages without a text layer (scans) are read by OCR
    (ocr.enabled); e-books, slide decks and notes are indexed with their chapters or slides.

    Examples:
      syllabus ingest book.pdf notes/*.pdf
      syllabus ingest lecture.mp4 talk.m4a
      syllabus ingest book.epub deck.pptx notes.docx notes.md scanned.pdf
      syllabus ingest ~/courses/physics/          # every PDF and recording inside, recursively
      syllabus --kb ~/kb/physics ingest lecture-notes.pdf --json
      syllabus ingest ~/courses/physics/ --ray            # transcribe and embed on a local Ray instance
      syllabus ingest /nfs/semester/ --ray auto           # ... on the cluster this node belongs to
    """
    from syllabus_common.errors import SyllabusError
    from ingest.document import expand_inputs
    from pipeline.api import KnowledgeBase
    from pipeline.ui import STATE, bars, emit_json, err

    cfg = STATE.config()
    if ray is not None:
        from pipeline.scaleout import require_ray

        require_ray()  # one line naming what to install, before anything is created
    started = time.perf_counter()
    files = expand_inputs(files)
    if not files:
        raise SyllabusError("no documents or media files found in the given folders")
    with KnowledgeBase(cfg, STATE.kb_path(), create=True) as kb:
        with bars(quiet=as_json, files=len(files), describe=_outcome_line) as progress:
            outcomes = kb.ingest(files, progress, ray=ray)
    failed = [o for o in outcomes if o.failed]
    if as_json:
        emit_json({"kb": str(STATE.kb_path()), "seconds": round(time.perf_counter() - started, 3),
                   "outcomes": [o.__dict__ for o in outcomes]})
    else:
        for o in failed if STATE.quiet else []:
            err.print(_outcome_line(o), highlight=False)
        if not STATE.quiet:
            counts = {s: sum(o.status == s for o in outcomes) for s in ("added", "replaced", "unchanged", "duplicate", "failed")}
            summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            err.print(f"{summary} in {time.perf_counter() - started:.1f} s → {STATE.kb_path()}", highlight=False)
    if failed:
        raise typer.Exit(1)


def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the documents in the knowledge base with their length (pages, slides, e-book locations or
    paragraphs), sections, chunks and size.

    Example:
      syllabus list
    """
    from rich.table import Table

    from syllabus_common.places import extent
    from pipeline.ui import STATE, emit_json, out
    from pipeline.api import KnowledgeBase

    with KnowledgeBase(STATE.config(), STATE.kb_path()) as kb:
        docs = kb.documents()
        usage = kb.disk_usage()
    if as_json:
        emit_json({"kb": str(STATE.kb_path()), "disk_bytes": usage,
                   "documents": [dict(d.__dict__, length=extent(d.kind, d.n_pages, d.n_paras)) for d in docs]})
        return
    table = Table(title=f"{STATE.kb_path()} — {len(docs)} documents, {usage / 1e6:.1f} MB")
    for col in ("id", "title", "file", "kind", "length", "OCR", "sections", "chunks", "size", "added"):
        table.add_column(col, justify="right" if col in ("id", "length", "sections", "chunks", "size") else "left")
    for d in docs:
        table.add_row(
            str(d.id), d.title, Path(d.path).name, d.kind, extent(d.kind, d.n_pages, d.n_paras), str(d.n_ocr_pages or ""),
            str(d.n_sections),
            str(d.n_chunks),
            f"{d.size_bytes / 1e6:.1f} MB", datetime.fromtimestamp(d.added_at).strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def search(
    query: str = typer.Argument(..., help="What to look for, in your own words."),
    k: Optional[int] = typer.Option(None, "-k", min=1, help="Passages to return (default: retrieval.k)."),
    fusion: Optional[str] = typer.Option(None, "--mode", help="rrf (hybrid), dense or bm25 (default: retrieval.fusion)."),
    doc: Optional[List[str]] = typer.Option(None, "--doc", help="Only these documents (path, file name, title or id); repeatable."),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="features, llm, cross-encoder or none (default: retrieval.rerank.method)."),
    expand: Optional[str] = typer.Option(None, "--expand", help="llm: BM25 also matches the LLM's short answer (never shown as one); none (default: retrieval.expand.method)."),
    full: bool = typer.Option(False, "--full", help="Print whole passages, not the first lines."),
    as_json: bool = typer.Option(False, "--json", help="Print hits as JSON."),
) -> None:
    """Hybrid search (dense + BM25, reciprocal rank fusion) with title, page and section.

    Examples:
      syllabus search "how do I read a table from a file" -k 5
      syllabus search "LoRA memory" --mode bm25 --json
      syllabus search "what does ::: do" --rerank llm
      syllabus search "how do I run a file of commands" --expand llm
    """
    from rich.markup import escape

    from syllabus_common.errors import ConfigError
    from syllabus_common.timefmt import own_heading
    from pipeline.ui import STATE, emit_json, out
    from pipeline.api import KnowledgeBase

    if fusion is not None and fusion not in ("rrf", "dense", "bm25"):
        raise ConfigError(f"--mode must be rrf, dense or bm25, not {fusion!r}")
    if rerank is not None:
        from pipeline.rerank import available_rerankers

        if rerank not in available_rerankers():
            raise ConfigError(f"--rerank must be one of {', '.join(sorted(available_rerankers()))}, not {rerank!r}")
    if expand is not None:
        from pipeline.expand import available_expanders

        if expand not in available_expanders():
            raise ConfigError(f"--expand must be one of {', '.join(available_expanders())}, not {expand!r}")
    from pipeline.kb.search import last_expansion

    started = time.perf_counter()
    with KnowledgeBase(STATE.config(), STATE.kb_path()) as kb:
        hits = kb.search(query, k=k, fusion=fusion, docs=doc, rerank=rerank, expand=expand)
        expansion = last_expansion(kb)
    elapsed = time.perf_counter() - started
    if as_json:
        emit_json({"query": query, "seconds": round(elapsed, 4), "expansion": expansion,
                   "hits": [h.as_dict() for h in hits]})
        return
    if expansion:
        out.print(f"[dim]also matched (the model's answer, not a source): {escape(expansion)}[/]\n", highlight=False)
    if not hits:
        out.print("no passages found")
        return
    for rank, h in enumerate(hits, 1):
        where = h.where
        head = f"[bold]{rank}. {escape(h.title)}[/]" + (f" · {where}" if where else "")
        if own_heading(h.section):  # not a bare time window: `where` says that
            head += f" · [italic]{escape(h.section)}[/]"
        # the score the order was made by: the re-ranker's when there is one (--json has both)
        head += f"  [dim]score {h.rerank_score if h.rerank_score is not None else h.score:.4f}[/]"
        out.print(head, highlight=False)
        text = h.text if full else " ".join(h.text.split())[:400] + ("…" if len(h.text) > 400 else "")
        out.print(f"   {escape(text)}\n", highlight=False)


def remove(
    document: str = typer.Argument(..., help="Path, file name, title or id (see `syllabus list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the removed document as JSON."),
) -> None:
    """Remove a document from the catalog and both indexes.

    Example:
      syllabus remove book.pdf
    """
    from pipeline.ui import STATE, emit_json, note
    from pipeline.api import KnowledgeBase

    with KnowledgeBase(STATE.config(), STATE.kb_path()) as kb:
        doc = kb.remove(document)
    if as_json:
        emit_json({"removed": doc.__dict__})
    else:
        note(f"removed #{doc.id} {doc.title} ({doc.path})")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command("list")(list_cmd)
    app.command()(search)
    app.command()(remove)
