"""The `syllabus` command line: assembles the command modules (each registers its commands) around
the global options, and maps errors to exit codes.

Heavy libraries (torch, transformers, faiss, PyMuPDF) are imported inside commands, so
``syllabus --help`` starts instantly. User errors print one line and exit non-zero; tracebacks only
with ``--verbose``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
import typer.main
from rich.markup import escape  # a message may hold brackets: pip install 'syllabus[ray]'

from syllabus_common.errors import SyllabusError
from pipeline.commands import books as books_commands
from pipeline.commands import config as config_commands
from pipeline.commands import kb as kb_commands
from pipeline.commands import llm as llm_commands
from pipeline.commands import planner as planner_commands
from pipeline.commands import summarize as summarize_commands
from pipeline.commands import transcribe as transcribe_commands
from pipeline.ui import STATE, err


def _backends() -> str:
    from ingest.asr.registry import BACKENDS as SPEECH
    from pipeline.llm.registry import BACKENDS as LLMS

    return "Backends — " + "; ".join(r.help() for r in (LLMS, SPEECH))


app = typer.Typer(
    name="syllabus",
    help="Local, offline study assistant: ingest books, search them with citations to pages.",
    epilog=_backends(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _global(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: $SYLLABUS_CONFIG, ./config.yaml, built-in)."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="Knowledge-base directory (default: kb.dir in the config)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes; results and errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and full tracebacks."),
) -> None:
    STATE.config_path, STATE.kb, STATE.quiet, STATE.verbose = config, kb, quiet, verbose
    STATE._cfg = None  # each invocation reads its own --config (several may run in one process)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # Library chatter (load reports, deprecation notes) is not for users.
        for noisy in ("sentence_transformers", "transformers", "faiss", "bm25s", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


for _commands in (kb_commands, llm_commands, summarize_commands, books_commands, config_commands, planner_commands,
                  transcribe_commands):
    _commands.register(app)


OPTIONAL_VALUE = ("--ray", "--cluster")  # options whose value may be left out: `--ray` alone means "local"


def optional_values(argv: list[str]) -> list[str]:
    """``--ray`` / ``--cluster`` with no address after them become ``--ray=local``: what follows is an
    address only when it looks like one (``auto``, ``local``, ``HOST:PORT``, ``ray://...``), so
    ``ingest --ray lecture.mp4`` keeps its file."""
    out = []
    for i, arg in enumerate(argv):
        if arg in OPTIONAL_VALUE:
            following = argv[i + 1] if i + 1 < len(argv) else ""
            if not (following in ("auto", "local") or (":" in following and not following.startswith("-"))):
                arg = f"{arg}=local"
        out.append(arg)
    return out


GLOBAL_VALUED, GLOBAL_FLAGS = ("--config", "-c", "--kb"), ("--quiet", "-q", "--verbose", "-v")


def hoist_globals(argv: list[str], group) -> list[str]:
    """Global options written after the command (``syllabus search "x" --kb DIR -q``) move in front of
    it, as if written there; a command's own option of the same name (``vram --config``) stays its own,
    and so do the values of its options and everything after ``--``."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # the command: the first word not a global option
        i += 2 if argv[i] in GLOBAL_VALUED else 1
    if i >= len(argv) or argv[i] not in getattr(group, "commands", {}):
        return argv
    params = [p for p in group.commands[argv[i]].params if p.param_type_name == "option"]
    own = {o for p in params for o in (*p.opts, *p.secondary_opts)}
    valued = {o for p in params if not p.is_flag and not p.count for o in p.opts}
    moved, kept, rest = [], [], argv[i + 1:]
    j = 0
    while j < len(rest):
        word, name = rest[j], rest[j].split("=", 1)[0]
        if word == "--":
            kept += rest[j:]
            break
        take = 2 if (word in valued or (word in GLOBAL_VALUED and word not in own)) and j + 1 < len(rest) else 1
        is_global = name not in own and (name in GLOBAL_VALUED or word in GLOBAL_FLAGS)
        (moved if is_global else kept).extend(rest[j:j + take])
        j += take
    return [*argv[:i], *moved, argv[i], *kept]


def main(argv: list[str] | None = None) -> None:
    import os

    # PyTorch's OpenMP threads sleep when idle instead of spinning (read once, when torch loads; a
    # user's own setting wins). On a busy 2-core machine (load average 15) spinning threads turned a
    # 300-token prompt of the bundled model from 0.6 s into 6.9 s.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = typer.main.get_command(app)
    try:
        args = hoist_globals(optional_values(list(sys.argv[1:] if argv is None else argv)), command)
        code = command.main(args=args, prog_name="syllabus", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            raise KeyboardInterrupt
        sys.exit(code if isinstance(code, int) else 0)
    except typer.TyperException as exc:  # click's usage errors (typer bundles click)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `syllabus` alone: the help is printed already
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)  # one line, like every other error
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(exc.format_message())}{where}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except SyllabusError as exc:
        if STATE.verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C (typer.Abort: at a prompt)
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an unexpected library failure
        if STATE.verbose:
            err.print_exception()
        else:
            err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --verbose for details)",
                      highlight=False, soft_wrap=True)
        sys.exit(1)
