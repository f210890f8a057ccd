"""Speech use cases: ``model: auto`` resolved by the planner, and a batch of recordings transcribed
to subtitle and text files (what ``syllabus transcribe`` does).

    from pipeline.api import transcribe_batch
    batch = transcribe_batch(["lecture.mp4"], cfg, output_dir="transcripts", formats="srt,txt")
    for f in batch.files: print(f.input, f.status, f.outputs)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from syllabus_common.errors import ConfigError, SyllabusError
from pipeline.progress import Progress

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def planned_speech_model(offline: bool = True) -> str:
    """``asr.model: auto``: the speech model the resource planner picks for this machine (`syllabus plan`)."""
    from pipeline.planner.plan import resolve_auto

    choice = resolve_auto("speech", offline=offline)
    log.info("asr model auto: %s", choice["explanation"])
    return choice["model"]


def speech_config(cfg):
    """The config with ``asr.model: auto`` replaced by the planner's choice (unchanged otherwise), as
    ingest/ expects it: ingest knows nothing of the planner."""
    if cfg.asr.model != "auto":
        return cfg
    asr = cfg.asr.model_copy(update={"model": planned_speech_model(cfg.offline)})
    return cfg.model_copy(update={"asr": asr})


@dataclass
class FileTranscript:
    """One file of a batch: its outputs and speed, or why it failed."""

    input: str
    status: str  # "done" | "failed"
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    duration: float | None = None  # seconds of audio
    seconds: float | None = None  # seconds spent
    real_time_factor: float | None = None  # audio seconds decoded now per second spent
    language: str | None = None
    language_probability: float | None = None
    segments: int = 0
    resumed_at: float | None = None
    out_dir: str | None = None

    def as_dict(self) -> dict:
        if self.status == "failed":
            return {"input": self.input, "status": self.status, "error": self.error}
        return {k: v for k, v in self.__dict__.items() if k not in ("error", "out_dir")}


@dataclass
class TranscribeBatch:
    backend: str
    model: str
    device: str
    compute_type: str
    threads: tuple[int, int] | None  # (encoder, decoder) CPU threads; faster-whisper only
    load_seconds: float
    files: list[FileTranscript] = field(default_factory=list)

    @property
    def failed(self) -> list[FileTranscript]:
        return [f for f in self.files if f.status == "failed"]

    def as_dict(self) -> dict:
        return {"backend": self.backend, "model": self.model, "device": self.device, "compute_type": self.compute_type,
                "threads": dict(zip(("encoder", "decoder"), self.threads)) if self.threads else None,
                "load_seconds": round(self.load_seconds, 3), "files": [f.as_dict() for f in self.files]}


def output_stems(files: list[Path]) -> dict[Path, str]:
    """Output names follow the input's stem; inputs sharing a stem in one batch keep their extension
    (lecture.mp4 → lecture.mp4.srt, lecture.m4a → lecture.m4a.srt) so neither overwrites the other."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    return {f: f.stem if counts[f.stem] == 1 else f.name for f in files}


def transcribe_batch(files: list[str | Path], cfg, asr=None, output_dir: str | Path | None = None,
                     formats: str | list[str] | None = None, restart: bool = False,
                     progress: Progress | None = None, notify: Callable[[str], None] | None = None,
                     on_loaded: Callable[[TranscribeBatch], None] | None = None,
                     slides: bool = False, runner: Callable | None = None) -> TranscribeBatch:
    """Transcribe ``files`` with one loaded model; each file resumes from its checkpoint unless
    ``restart``. ``asr``: an ``ASRConfig`` (default ``cfg.asr``); ``output_dir``: default beside each
    input. A bad file is reported in its result and the batch goes on; a config error stops it.
    ``progress`` sees ``file_started``, ``stage``, ``position`` (audio seconds) and ``file_done(result)``;
    ``on_loaded(batch)`` is called once the model is ready. ``slides``: also write the slides a video
    shows, OCR'd, with their times (``<stem>.slides.txt``/``.json``; OCR cached in the user cache).
    ``runner(paths, stems, settings, progress)``: who transcribes the files (default: this process,
    one after the other; ``pipeline.scaleout.work.transcribe_runner``: Ray workers)."""
    from ingest.asr import load_backend, options_from_config
    from ingest.transcript import parse_formats

    asr = asr or cfg.asr
    if asr.model == "auto":
        asr = asr.model_copy(update={"model": planned_speech_model(cfg.offline)})
    progress = progress or Progress()
    paths = [Path(f) for f in files]
    fmts = parse_formats(formats or asr.formats)
    name, model_options, decode = options_from_config(asr, offline=cfg.offline)
    if runner is None and paths and not any(p.is_file() for p in paths):  # nothing to hear: no model to load
        from ingest.asr import check_model

        check_model(name, model_options)  # a wrong model name is still the error it is
        batch = TranscribeBatch(name, asr.model, "not loaded", asr.compute_type, None, 0.0)
        for i, path in enumerate(paths):
            progress.file_started(str(path), i, len(paths))
            batch.files.append(FileTranscript(str(path), "failed", error=f"{path}: no such file"))
            progress.file_done(batch.files[-1])
        return batch
    if runner is None:
        loaded_at = time.perf_counter()
        engine = load_backend(name, model_options, notify=notify)
        batch = TranscribeBatch(engine.name, engine.model_name, engine.device, engine.compute_type,
                                getattr(engine, "threads", None), time.perf_counter() - loaded_at)
    else:  # the workers load the model; a wrong name is a configuration error here, before any starts
        from ingest.asr import check_model

        check_model(name, model_options)
        engine = None
        batch = TranscribeBatch(name, asr.model, "ray workers", asr.compute_type, None, 0.0)
    if on_loaded is not None:
        on_loaded(batch)
    stems = output_stems(paths)
    if runner is not None:  # the files' work on a cluster (pipeline.scaleout), this same per-file function
        batch.files = runner(paths, stems, dict(asr=asr, output_dir=output_dir, fmts=fmts, restart=restart,
                                                slides=slides), progress)
        return batch
    for i, path in enumerate(paths):
        progress.file_started(str(path), i, len(paths))
        progress.stage(path.name, None)
        result = transcribe_one(path, stems[path], engine, decode, cfg, asr, output_dir, fmts, restart, slides,
                                notify, progress.position)
        batch.files.append(result)
        progress.file_done(result)
    return batch


def transcribe_one(path: Path, stem: str, engine, decode, cfg, asr, output_dir, fmts: list[str], restart: bool,
                   slides: bool, notify=None, on_progress=None) -> FileTranscript:
    """One recording of a batch with a loaded ``engine``: transcribed (resuming from its checkpoint
    unless ``restart``), written in ``fmts`` beside it or in ``output_dir``; a bad file is a failed
    result, a configuration error is raised."""
    from ingest.asr.runner import checkpoint_path, finish, transcribe_file
    from ingest.transcript import output_paths, write_outputs

    out_dir = Path(output_dir) if output_dir is not None else path.parent
    ck = checkpoint_path(out_dir, stem)
    try:
        t = transcribe_file(path, engine, decode, ck, zh_variant=asr.zh_variant, block_seconds=asr.block_seconds,
                            restart=restart, notify=notify, on_progress=on_progress)
        written = write_outputs(t, output_paths(path, out_dir, fmts, stem))
        if slides:
            from ingest.lecture import write_slide_files
            from syllabus_common.models import user_cache_dir

            written += write_slide_files(path, out_dir, stem, cfg, user_cache_dir(), t.duration)
        finish(ck)
    except ConfigError:
        raise
    except SyllabusError as exc:  # this file is bad (IngestError); the batch goes on
        return FileTranscript(str(path), "failed", error=str(exc))
    done = t.duration - (t.resumed_at or 0.0)
    return FileTranscript(
        str(path), "done", [str(p) for p in written], duration=round(t.duration, 3), seconds=round(t.seconds, 3),
        real_time_factor=round(done / t.seconds, 2) if t.seconds > 0 else None, language=t.language,
        language_probability=t.language_probability, segments=len(t.segments), resumed_at=t.resumed_at,
        out_dir=str(out_dir))
