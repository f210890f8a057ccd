"""What every CLI command shares: the global options' state, the consoles, notes, JSON output, a
loading spinner, the one progress-bar class, and a way to declare a command's many options as a
dataclass. Commands import this module, never each other."""

from __future__ import annotations

import inspect
import json
import sys
import time
import typing
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

from rich.console import Console

from pipeline.progress import Progress

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
            from syllabus_common.models import enforce_offline
            from pipeline.config import load_config

            self._cfg = load_config(self.config_path)
            enforce_offline(self._cfg.offline)
        return self._cfg

    def kb_path(self) -> Path:
        return self.kb.expanduser().resolve() if self.kb else self.config().kb.path

    def has_kb(self) -> bool:
        return (self.kb_path() / "catalog.sqlite").exists()


STATE = State()


def note(message: str) -> None:
    """A side remark to stderr (so stdout stays clean for --json); silenced by --quiet."""
    if not STATE.quiet:
        err.print(message, highlight=False)


def warn(message: str) -> None:
    """A loud fallback or a resume, on stderr; --quiet silences it."""
    note(f"[yellow]![/] {message}")


def check_mode(mode: str | None) -> None:
    """A ``--mode`` option's value (ask, chat, summarize): one of pipeline.trusted.MODES."""
    from pipeline.trusted import MODES

    if mode is not None and mode not in MODES:
        from syllabus_common.errors import ConfigError

        raise ConfigError(f"--mode must be {', '.join(MODES[:-1])} or {MODES[-1]}, not {mode!r}")


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def command_with_options(options: type):
    """Decorator for a command with many options: ``options`` is a dataclass whose fields' defaults are
    ``typer.Option(...)``; the decorated ``fn(o)`` becomes a command taking those options (typer reads
    the generated signature) and is called with one ``options`` instance."""

    def decorate(fn: Callable[[object], None]) -> Callable[..., None]:
        hints = typing.get_type_hints(options)
        params = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
                  for f in fields(options)]

        def command(**values) -> None:
            return fn(options(**values))

        command.__name__, command.__qualname__, command.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        command.__module__ = fn.__module__
        command.__signature__ = inspect.Signature(params, return_annotation=None)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def loading(message: str, quiet: bool = False):
    """A spinner on stderr while something slow loads (none with --quiet)."""
    return nullcontext() if quiet or STATE.quiet else err.status(message, spinner="dots")


def load_model(cfg, kb_path: Path | None = None, background: bool = False):
    """:func:`pipeline.api.load_model` with a spinner while the model loads and its notes on stderr
    (``background``: the backend may load the weights in a thread, see :class:`LoadContext`)."""
    from pipeline.llm import load_model as load

    with loading(f"loading {cfg.llm.model} ({cfg.llm.backend})…"):
        return load(cfg, kb_path, notify=note, background=background)


class Bars(Progress):
    """The one progress display: an optional bar over the files of a batch, and a bar for the current
    step with its count (units, or seconds of audio with the speed as a multiple of real time), the
    elapsed time and an ETA. ``describe(outcome)`` gives the line printed when a file is done."""

    def __init__(self, console: Console | None = None, files: int = 0,
                 describe: Callable[[object], str | None] | None = None):
        from rich.progress import (BarColumn, Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = console or err
        self.bars = RichProgress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.files = self.bars.add_task("files", total=files, count=f"0/{files}", speed="") if files else None
        self.hours = None  # the bar over audio hours of a parallel batch
        self.describe = describe
        self.step = None
        self.label = ""
        self.cached = 0
        self.started = 0.0
        self.first: float | None = None

    def __enter__(self):
        if self.console.is_terminal:  # a pipe or a log gets the per-file lines, not a bar's last frame
            self.bars.start()
        return self

    def __exit__(self, *exc):
        if self.bars.live.is_started:  # (stopping a bar never shown prints a blank line off a terminal)
            self.bars.stop()

    def file_started(self, path, index, total):
        if self.files is not None:
            self.bars.update(self.files, description=f"[{index + 1}/{total}] {Path(path).name}")

    def stage(self, description, total):
        self._drop_step()
        self.label = f"  {description}" if self.files is not None else description
        self.cached, self.started, self.first = 0, time.perf_counter(), None
        self.step = self.bars.add_task(self.label, total=total, count=f"0/{total}" if total else "", speed="")

    def advance(self, n=1, cached=0):
        if self.step is None:
            return
        self.cached += cached
        task = self._task(self.step)
        total = task.total if task.total is None or task.completed + n <= task.total else task.completed + n
        desc = f"{self.label} ({self.cached} from cache)" if self.cached else self.label
        done = task.completed + n
        self.bars.update(self.step, completed=done, total=total, description=desc,
                         count=f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}")

    def position(self, done, total):
        if self.step is None:
            return
        if self.first is None:  # a resumed file starts part-way: measure speed from there
            self.first = done
        elapsed = time.perf_counter() - self.started
        speed = f"{(done - self.first) / elapsed:.1f}× rt" if elapsed > 1 and done > self.first else ""
        self.bars.update(self.step, completed=done, total=total, speed=speed,
                         count=f"{done:>6.0f}/{f'{total:.0f}' if total else '?'} s audio")

    def audio(self, done, total):
        if self.hours is None:
            self.hours = self.bars.add_task("audio", total=total, count="", speed="")
        elapsed = self._task(self.hours).elapsed or 0.0
        speed = f"{done / elapsed:.1f}× rt" if elapsed > 1 else ""
        self.bars.update(self.hours, completed=done, total=total, speed=speed,
                         count=f"{done / 3600:.2f}/{total / 3600:.2f} h audio")

    def file_done(self, outcome):
        self._drop_step()
        if self.files is not None:
            self.bars.advance(self.files)
            task = self._task(self.files)
            self.bars.update(self.files, count=f"{task.completed:.0f}/{task.total:.0f}")
        line = self.describe(outcome) if self.describe else None
        if line:
            self.console.print(line, highlight=False, soft_wrap=True)

    def _task(self, task_id):
        return next(t for t in self.bars.tasks if t.id == task_id)

    def _drop_step(self):
        if self.step is not None:
            self.bars.remove_task(self.step)
            self.step = None


@contextmanager
def bars(quiet: bool = False, files: int = 0, describe: Callable[[object], str | None] | None = None):
    """``Bars`` on stderr, or a silent ``Progress`` under --quiet / --json (``quiet``)."""
    if quiet or STATE.quiet:
        yield Progress()
        return
    with Bars(err, files, describe) as shown:
        yield shown
