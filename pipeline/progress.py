"""The callbacks long work reports through (ingest, transcription, summaries). All no-ops here;
the CLI draws them as one kind of Rich progress bar (``pipeline.ui.Bars``)."""

from __future__ import annotations


class Progress:
    def file_started(self, path: str, index: int, total: int) -> None:
        """File ``index`` (0-based) of ``total`` in a batch begins."""

    def stage(self, description: str, total: int | None) -> None:
        """A new step of the current work, with ``total`` units if known (replaces the previous step)."""

    def advance(self, n: int = 1, cached: int = 0) -> None:
        """``n`` more units of the step done, ``cached`` of them answered from a cache."""

    def position(self, done: float, total: float | None) -> None:
        """Absolute progress in seconds of audio (a transcription), ``total`` once known."""

    def audio(self, done: float, total: float) -> None:
        """Seconds of audio finished across a batch whose files run in parallel (``--ray``), of ``total``."""

    def file_done(self, outcome) -> None:
        """The current file finished with ``outcome`` (an ingest or transcription result)."""
