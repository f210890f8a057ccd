"""Speech commands: transcribe recordings to subtitle/text files; convert Whisper weights."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer


class AudioProgress:
    """One bar per file, in seconds of audio, with ETA and speed as a multiple of real time."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bars = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed:>6.0f}/{task.fields[total_s]} s audio"), TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True,
        )
        self.task = None
        self.started = 0.0
        self.first = 0.0

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc):
        self.bars.stop()

    def start(self, name: str) -> None:
        if self.task is not None:
            self.bars.remove_task(self.task)
        self.task = self.bars.add_task(name, total=None, total_s="?", speed="")
        self.started, self.first = time.perf_counter(), None

    def update(self, done: float, total: float | None) -> None:
        if self.first is None:  # a resumed file starts part-way: measure speed from there
            self.first = done
        elapsed = time.perf_counter() - self.started
        speed = f"{(done - self.first) / elapsed:.1f}× rt" if elapsed > 1 and done > self.first else ""
        self.bars.update(self.task, completed=done, total=total, total_s=f"{total:.0f}" if total else "?", speed=speed)


def _stems(files: list[Path]) -> dict[Path, str]:
    """Output names follow the input's stem; inputs sharing a stem in one batch keep their extension
    (lecture.mp4 → lecture.mp4.srt, lecture.m4a → lecture.m4a.srt) so neither overwrites the other."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    return {f: f.stem if counts[f.stem] == 1 else f.name for f in files}


def register(app: typer.Typer) -> None:
    @app.command()
    def transcribe(
        files: List[Path] = typer.Argument(..., help="Audio or video files (mp4, mkv, webm, mov, mp3, m4a, wav, flac, ogg, ...).", show_default=False),
        output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Where transcripts go (default: beside each input)."),
        formats: Optional[str] = typer.Option(None, "--format", "-f", help="Comma-separated: srt, vtt, txt, json, or all (default: asr.formats)."),
        backend: Optional[str] = typer.Option(None, "--backend", "-b", help="faster-whisper or openai-whisper (default: asr.backend)."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="base, tiny.en, auto, a model folder or .pt file (default: asr.model)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default: asr.device)."),
        compute_type: Optional[str] = typer.Option(None, "--compute-type", help="auto (int8 CPU / float16 CUDA), int8, int8_float16, float16, float32, ..."),
        language: Optional[str] = typer.Option(None, "--language", "-l", help="auto or a language code such as en, zh (default: asr.language)."),
        zh_variant: Optional[str] = typer.Option(None, "--zh-variant", help="Chinese script: none, tw (Traditional, Taiwan), hk, cn (Simplified)."),
        beam_size: Optional[int] = typer.Option(None, "--beam-size", min=1, max=16, help="1 = greedy (default: asr.beam_size)."),
        word_timestamps: Optional[bool] = typer.Option(None, "--word-timestamps/--no-word-timestamps", help="Per-word times in the JSON output."),
        vad: Optional[bool] = typer.Option(None, "--vad/--no-vad", help="Skip silence with Silero VAD (faster-whisper)."),
        restart: bool = typer.Option(False, "--restart", help="Ignore checkpoints of interrupted runs and start over."),
        slides: bool = typer.Option(False, "--slides", help="Also find the slides a video shows, OCR them and write <stem>.slides.txt/.json with their times."),
        as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    ) -> None:
        """Transcribe lectures to SRT, WebVTT, TXT and JSON; an interrupted file resumes where it stopped.

        Examples:
          syllabus transcribe lecture.mp4 talk.m4a -o transcripts/ --format srt,vtt,txt,json
          syllabus transcribe lecture.mp4 --backend openai-whisper --model base --language zh --zh-variant tw
          syllabus transcribe *.mkv --model tiny.en --device cuda --json
          syllabus transcribe lecture.mp4 --slides       # + lecture.slides.txt/.json: slide texts with times
        """
        from pipeline.cli import STATE, emit_json, err, note
        from pipeline.config import ASRConfig
        from pipeline.errors import ConfigError, SyllabusError

        cfg = STATE.config()
        overrides = dict(backend=backend, model=model, device=device, compute_type=compute_type, language=language,
                         zh_variant=zh_variant, beam_size=beam_size, word_timestamps=word_timestamps, vad=vad)
        try:  # the same validation as the config file, so an option error names the valid values
            asr = ASRConfig.model_validate({**cfg.asr.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
        except Exception as exc:
            errors = getattr(exc, "errors", lambda: [])()
            detail = "; ".join(f"--{'-'.join(str(e['loc'][0]).split('_'))}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
            raise ConfigError(detail or str(exc)) from None

        from ingest.asr import load_backend, options_from_config
        from ingest.asr.runner import checkpoint_path, finish, transcribe_file
        from ingest.transcript import output_paths, parse_formats, write_outputs

        fmts = parse_formats(formats or asr.formats)
        name, model_options, decode = options_from_config(asr, offline=cfg.offline)

        def say(message: str) -> None:  # loud fallbacks and resumes, on stderr; --quiet silences them
            note(f"[yellow]![/] {message}")

        loaded_at = time.perf_counter()
        engine = load_backend(name, model_options, notify=say)
        load_seconds = time.perf_counter() - loaded_at
        threads = getattr(engine, "threads", None)  # (encoder, decoder) CPU threads; faster-whisper only
        if not as_json:
            split = f", encoder {threads[0]} / decoder {threads[1]} threads" if threads and threads[0] else ""
            note(f"{engine.name} · {engine.model_name} · {engine.device} {engine.compute_type}{split} (loaded in {load_seconds:.1f} s)")

        stems = _stems(files)
        results = []
        progress = None if (STATE.quiet or as_json) else AudioProgress(err)
        if progress is not None:
            progress.__enter__()
        try:
            for path in files:
                out_dir = output_dir or path.parent
                stem = stems[path]
                ck = checkpoint_path(out_dir, stem)
                if progress is not None:
                    progress.start(path.name)
                try:
                    t = transcribe_file(path, engine, decode, ck, zh_variant=asr.zh_variant, block_seconds=asr.block_seconds,
                                        restart=restart, notify=say, on_progress=progress.update if progress else None)
                    written = write_outputs(t, output_paths(path, out_dir, fmts, stem))
                    if slides:
                        from ingest.lecture import write_slide_files
                        from pipeline.models import user_cache_dir

                        written += write_slide_files(path, out_dir, stem, cfg, user_cache_dir(), t.duration)
                    finish(ck)
                except SyllabusError as exc:  # this file is bad (IngestError); the batch goes on
                    if isinstance(exc, ConfigError):
                        raise
                    results.append({"input": str(path), "status": "failed", "error": str(exc)})
                    if not as_json:
                        err.print(f"[red]✗[/] {exc}", highlight=False, soft_wrap=True)
                    continue
                done = t.duration - (t.resumed_at or 0.0)
                r = {"input": str(path), "status": "done", "outputs": [str(p) for p in written],
                     "duration": round(t.duration, 3), "seconds": round(t.seconds, 3),
                     "real_time_factor": round(done / t.seconds, 2) if t.seconds > 0 else None,
                     "language": t.language, "language_probability": t.language_probability,
                     "segments": len(t.segments), "resumed_at": t.resumed_at}
                results.append(r)
                if not as_json and not STATE.quiet:
                    speed = f" ({r['real_time_factor']}× real time)" if r["real_time_factor"] else ""
                    resumed = f", resumed at {t.resumed_at:.0f} s" if t.resumed_at else ""
                    names = ", ".join(p.name for p in written)
                    err.print(f"[green]✓[/] {path.name}: {t.duration:.1f} s audio in {t.seconds:.1f} s{speed}, "
                              f"{t.language}, {len(t.segments)} segments{resumed} → {out_dir}/ {names}", highlight=False,
                              soft_wrap=True)
        finally:
            if progress is not None:
                progress.__exit__(None, None, None)
        failed = [r for r in results if r["status"] == "failed"]
        if as_json:
            emit_json({"backend": engine.name, "model": engine.model_name, "device": engine.device,
                       "compute_type": engine.compute_type, "threads": dict(zip(("encoder", "decoder"), threads)) if threads else None,
                       "load_seconds": round(load_seconds, 3), "files": results})
        elif STATE.quiet:
            for r in failed:
                err.print(f"[red]✗[/] {r['error']}", highlight=False, soft_wrap=True)
        if failed:
            raise typer.Exit(1)

    @app.command("convert-whisper")
    def convert_whisper(
        ct2_dir: str = typer.Argument(..., help="CTranslate2 Whisper folder (with model.bin), or a bundled name: base, tiny.en."),
        out: Path = typer.Argument(..., help="The openai-whisper checkpoint to write (.pt)."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 (fp16 weights widened, runs anywhere) or float16 (half the size)."),
        verify: Optional[Path] = typer.Option(None, "--verify", help="Audio file to transcribe with both models; fails unless the texts match."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Convert CTranslate2 Whisper weights (e.g. the bundled base model) into an openai-whisper checkpoint.

        Splits the fused q/k/v and k/v projections, maps the names, widens fp16 to fp32, and checks
        every name and shape against openai-whisper's model.

        Examples:
          syllabus convert-whisper base whisper-base.pt --verify lecture.mp4
          syllabus convert-whisper ~/models/whisper-small-ct2 small.pt --dtype float16
          syllabus transcribe talk.m4a --backend openai-whisper --model whisper-base.pt
        """
        from pipeline.cli import STATE, emit_json, note

        from ingest.asr.weights import bundled_name, ct2_model_dir
        from ingest.convert_whisper import convert, verify_same_text

        source = Path(ct2_dir).expanduser()
        if not source.exists() and bundled_name(ct2_dir):
            source = ct2_model_dir(ct2_dir)
        started = time.perf_counter()
        report = convert(source, out, dtype=dtype)
        data = dict(report.__dict__, seconds=round(time.perf_counter() - started, 2))
        if verify is not None:
            check = verify_same_text(source, out, verify, cpu_threads=STATE.config().asr.cpu_threads)
            data["verify"] = check.__dict__
        if as_json:
            emit_json(data)
        else:
            note(f"wrote {report.output}: {report.tensors} tensors, {report.parameters / 1e6:.1f} M parameters, "
                 f"{report.dtype}, {report.bytes / 1e6:.0f} MB in {data['seconds']} s")
            if verify is not None:
                note(f"verify on {verify.name}: {'same text' if check.same else 'DIFFERENT text'} "
                     f"(faster-whisper float32 vs openai-whisper, greedy)")
        if verify is not None and not check.same:
            from pipeline.errors import SyllabusError

            raise SyllabusError(f"converted model transcribes {verify.name} differently:\n  ct2: {check.ct2_text}\n  pt:  {check.pt_text}")
