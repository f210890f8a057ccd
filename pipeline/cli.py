"""The `syllabus` command line: a thin layer over the library.

Heavy libraries (torch, transformers, faiss, PyMuPDF) are imported inside commands, so
``syllabus --help`` starts instantly. User errors print one line and exit non-zero; tracebacks only
with ``--verbose``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pipeline.errors import ConfigError, SyllabusError

app = typer.Typer(
    name="syllabus",
    help="Local, offline study assistant: ingest books, search them with citations to pages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)

out = Console(soft_wrap=False)
err = Console(stderr=True, soft_wrap=True)  # never wrap: one error, one line, in logs and pipes too


@dataclass
class State:
    config_path: Optional[Path] = None
    kb: Optional[Path] = None
    quiet: bool = False
    verbose: bool = False
    _cfg: object = field(default=None, repr=False)

    def config(self):
        if self._cfg is None:
            from pipeline.config import load_config
            from pipeline.models import enforce_offline

            self._cfg = load_config(self.config_path)
            enforce_offline(self._cfg.offline)
        return self._cfg

    def kb_path(self) -> Path:
        return self.kb.expanduser().resolve() if self.kb else self.config().kb.path


STATE = State()


@app.callback()
def _global(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: $SYLLABUS_CONFIG, ./config.yaml, built-in)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="Knowledge-base directory (default: kb.dir in the config)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; results and errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and full tracebacks."),
) -> None:
    STATE.config_path, STATE.kb, STATE.quiet, STATE.verbose = config, kb, quiet, verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # Library chatter (load reports, deprecation notes) is not for users.
        for noisy in ("sentence_transformers", "transformers", "faiss", "bm25s", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def note(message: str) -> None:
    """A side remark to stderr (so stdout stays clean for --json); silenced by --quiet."""
    if not STATE.quiet:
        err.print(message, highlight=False)


def emit_json(data) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# Commands live in their own modules and register here.
from pipeline.commands import kb as _kb_commands  # noqa: E402
from pipeline.commands import llm as _llm_commands  # noqa: E402
from pipeline.commands import summarize as _summarize_commands  # noqa: E402
from pipeline.commands import config as _config_commands  # noqa: E402
from pipeline.commands import planner as _planner_commands  # noqa: E402
from pipeline.commands import transcribe as _transcribe_commands  # noqa: E402

_kb_commands.register(app)
_llm_commands.register(app)
_summarize_commands.register(app)
_config_commands.register(app)
_planner_commands.register(app)
_transcribe_commands.register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="syllabus")
    except SyllabusError as exc:
        if STATE.verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an unexpected library failure
        if STATE.verbose:
            err.print_exception()
        else:
            err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --verbose for details)",
                      highlight=False, soft_wrap=True)
        sys.exit(1)
