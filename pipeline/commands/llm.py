"""LLM commands: ask (cited answers from the knowledge base) and serve (an OpenAI-compatible API)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer


def _source_line(c) -> str:
    from rich.markup import escape

    mark = "[green]✓[/]" if c.cited else " "
    where = f", {c.where}" if c.where else ""
    section = f" — [italic]{escape(c.heading)}[/]" if c.heading else ""
    return f"{mark} [bold][{c.n}][/] {escape(c.doc)}{escape(where)}{section}  [dim]sim {c.similarity:.2f}[/]"


def _show_context(prepared) -> None:
    from rich.markup import escape

    from pipeline.ask import format_passage
    from pipeline.ui import err

    err.print(f"[dim]— context: {len(prepared.citations)} passages, {prepared.context_tokens} tokens —[/]", highlight=False)
    for c in prepared.citations:
        err.print(escape(format_passage(c)) + "\n", highlight=False)


def _write(delta: str) -> None:
    sys.stdout.write(delta)
    sys.stdout.flush()


def _show_evidence(trusted) -> None:
    from pipeline.evidence import evidence_block

    if trusted.evidence:
        heading = "證據" if trusted.language == "zh-TW" else "Evidence"
        _write(f"{heading}:\n{evidence_block(trusted.evidence)}\n\n")


def _render(result, llm) -> None:
    from rich.markup import escape

    from pipeline.ui import STATE, err, out

    if result.found:
        if result.note:
            sys.stdout.write(("\n\n" if result.answer else "") + result.note)
        sys.stdout.write("\n")
        if result.faithfulness and result.verdicts and not STATE.quiet:
            err.print(f"[dim]{result.faithfulness}[/]", highlight=False)
    else:
        out.print(escape(result.answer), highlight=False)
    if result.citations:
        out.print("\n[bold]Sources[/]" if result.found else "\n[bold]Closest passages[/] (not used)", highlight=False)
        for c in result.citations:
            out.print(_source_line(c), highlight=False)
    if not STATE.quiet:
        t = result.timings
        first = f"first token {t['first_token_s']:.2f} s, " if t.get("first_token_s") is not None else ""
        if t.get("generated_first_token_s") is not None:
            first += f"model's first token {t['generated_first_token_s']:.2f} s, "
        speed = f", {t['decode_tokens_per_s']:.0f} tokens/s" if t.get("decode_tokens_per_s") else ""
        err.print(f"[dim]{first}total {t['total_s']:.2f} s{speed} · {llm.name} ({llm.describe().get('precision', llm.backend)})[/]",
                  highlight=False)


def ask(
    question: str = typer.Argument(..., help="Your question, in any language."),
    k: Optional[int] = typer.Option(None, "-k", min=1, help="Passages to retrieve (default: retrieval.k)."),
    doc: Optional[List[str]] = typer.Option(None, "--doc", help="Only these documents (path, file name, title or id); repeatable."),
    show_context: bool = typer.Option(False, "--show-context", help="Print the passages given to the model."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Longest answer in tokens (default: llm.max_new_tokens)."),
    as_json: bool = typer.Option(False, "--json", help="Print answer, evidence, verdicts, citations and timings as JSON."),
    mode: Optional[str] = typer.Option(None, "--mode", help="auto | extractive | generative (default: ask.mode)."),
    show_unsupported: bool = typer.Option(False, "--show-unsupported", help="Keep generated sentences the evidence does not support, marked."),
) -> None:
    """Answer from your documents: the evidence first (source sentences with their pages), then an
    answer whose every sentence was checked against the evidence it cites.

    Sources are listed under the answer ([n] ✓ = cited). If no passage is close enough to the
    question, it says so instead of guessing. Modes: extractive (the evidence is the answer),
    generative (the model writes from the evidence; unsupported sentences are dropped), auto (by
    the model's measured ability).

    Examples:
      syllabus ask "How much VRAM does LoRA fine-tuning of a 7B model need?"
      syllabus ask "What is a factor?" -k 8 --doc R-intro.pdf --show-context
      syllabus ask "LoRA 微調需要多少顯存？" --json
      syllabus ask "What is a factor?" --mode generative --show-unsupported
    """
    from pipeline.api import KnowledgeBase, answer
    from pipeline.prompting import load_prompts
    from pipeline.ui import STATE, check_mode, emit_json, load_model

    cfg = STATE.config()
    check_mode(mode)
    prompts = load_prompts(cfg)  # template errors surface before anything slow
    with KnowledgeBase(cfg, STATE.kb_path()) as kb:
        # The weights load in the background while the evidence is found and printed; the model's
        # tokenizer (to fit the passages) is ready at once.
        llm = load_model(cfg, kb.path, background=True)
        kb.embedder.model  # load the embedding model too: timings start with it ready
        result = answer(kb, llm, question, k=k, docs=doc, max_new_tokens=max_tokens, prompts=prompts,
                        on_delta=None if as_json else _write,
                        on_context=_show_context if show_context and not as_json else None,
                        on_evidence=None if as_json else _show_evidence, mode=mode, show_unsupported=show_unsupported)
    if as_json:
        emit_json(result.as_dict(messages=show_context))
    else:
        _render(result, llm)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it to the network (no authentication!)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
) -> None:
    """Serve the configured model with an OpenAI-compatible API (/v1/chat/completions, /v1/models).

    Any OpenAI client works against it, including Syllabus itself on another machine
    (llm.backend: openai, llm.base_url: http://HOST:PORT/v1).

    Examples:
      syllabus serve --port 8000
      curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Hi"}]}'
    """
    from pipeline.llm import options_from_config
    from pipeline.llm.server import ServeLimits, bind_socket, create_app, run_server
    from pipeline.ui import STATE, load_model, note

    cfg = STATE.config()
    sock = bind_socket(host, port)  # a busy port fails here, before any model is loaded or claim made
    llm = load_model(cfg, STATE.kb_path() if STATE.has_kb() else None)
    limits = ServeLimits(**cfg.serve.model_dump())
    app_ = create_app(llm, options_from_config(cfg.llm), limits)
    bound = sock.getsockname()[1]
    note(f"serving {llm.name} ({llm.describe().get('precision', llm.backend)}, context {llm.context_length}) on "
         f"http://{host}:{bound}/v1 — OpenAI-compatible; Ctrl-C stops")
    run_server(app_, sock, limits.shutdown_grace, log_level="debug" if STATE.verbose else "warning")


def chat(
    k: Optional[int] = typer.Option(None, "-k", min=1, help="Passages per question (default: retrieval.k; /k N changes it)."),
    doc: Optional[List[str]] = typer.Option(None, "--doc", help="Only these documents; repeatable (/doc NAME changes it)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Longest answer in tokens (default: llm.max_new_tokens)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="auto | extractive | generative (default: ask.mode)."),
) -> None:
    """Talk with your documents: models load once, each answer cites its pages, follow-ups use the conversation.

    Commands: /sources (the passages of the last answer), /doc NAME, /k N, /clear, /quit (or Ctrl-D).
    Ctrl-C stops an answer and keeps the session. History is kept across sessions.

    Examples:
      syllabus chat
      syllabus chat --doc R-intro.pdf -k 8
    """
    from rich.markup import escape

    from pipeline.api import KnowledgeBase
    from pipeline.chat import HELP, Session
    from pipeline.prompting import load_prompts
    from pipeline.ui import STATE, check_mode, err, load_model, out

    cfg = STATE.config()
    check_mode(mode)
    prompts = load_prompts(cfg)
    history = _readline_history()
    with KnowledgeBase(cfg, STATE.kb_path()) as kb:
        llm = load_model(cfg, kb.path, background=True)  # the weights load while the user types
        kb.embedder.model
        session = Session(k=k, docs=list(doc) if doc else None)
        err.print(f"[dim]{llm.name} · {kb.path} · {HELP}[/]", highlight=False)
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                break
            except KeyboardInterrupt:
                sys.stdout.write("\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                reply = session.command(line, kb)
                if reply == "quit":
                    break
                out.print(escape(reply), highlight=False)
                continue
            try:
                _render(session.ask(kb, llm, line, max_new_tokens=max_tokens, prompts=prompts, on_delta=_write,
                                    on_evidence=_show_evidence, mode=mode), llm)
            except KeyboardInterrupt:
                out.print("\n[dim](stopped)[/]", highlight=False)
    if history:
        history()


def _readline_history():
    """Line editing and history across sessions (``~/.cache/syllabus/chat_history``); returns the saver."""
    try:
        import readline
    except ImportError:  # no readline on this platform: plain input()
        return None
    from syllabus_common.models import user_cache_dir

    path = user_cache_dir() / "chat_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass

    def save() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.set_history_length(1000)
            readline.write_history_file(path)
        except OSError:
            pass

    return save


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(chat)
    app.command()(serve)
