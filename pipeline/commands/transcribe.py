"""Speech commands: transcribe recordings to subtitle/text files; convert Whisper weights."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _asr_options(cfg, overrides: dict):
    """The config's asr section with the command's options applied, validated like the config file,
    so an option error names the option and the valid values."""
    from syllabus_common.errors import ConfigError
    from pipeline.config import ASRConfig

    try:
        return ASRConfig.model_validate({**cfg.asr.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except Exception as exc:
        errors = getattr(exc, "errors", lambda: [])()
        detail = "; ".join(f"--{'-'.join(str(e['loc'][0]).split('_'))}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
        raise ConfigError(detail or str(exc)) from None


def _file_line(r) -> str | None:
    if r.status == "failed":
        return f"[red]✗[/] {r.error}"
    speed = f" ({r.real_time_factor}× real time)" if r.real_time_factor else ""
    resumed = f", resumed at {r.resumed_at:.0f} s" if r.resumed_at else ""
    names = ", ".join(Path(p).name for p in r.outputs)
    return (f"[green]✓[/] {Path(r.input).name}: {r.duration:.1f} s audio in {r.seconds:.1f} s{speed}, "
            f"{r.language}, {r.segments} segments{resumed} → {r.out_dir}/ {names}")


def _backends_help() -> str:
    from ingest.asr.registry import available_backends

    return f"{' or '.join(available_backends())} (default: asr.backend)."


def transcribe(
    files: List[Path] = typer.Argument(..., help="Audio or video files (mp4, mkv, webm, mov, mp3, m4a, wav, flac, ogg, ...).", show_default=False),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Where transcripts go (default: beside each input)."),
    formats: Optional[str] = typer.Option(None, "--format", "-f", help="Comma-separated: srt, vtt, txt, json, or all (default: asr.formats)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help=_backends_help()),
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
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Transcribe on a Ray cluster, one model per worker (auto, HOST:PORT, ray://HOST:10001); alone: a local Ray instance. Needs pip install 'syllabus[ray]'."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Transcribe lectures to SRT, WebVTT, TXT and JSON; an interrupted file resumes where it stopped.

    Examples:
      syllabus transcribe lecture.mp4 talk.m4a -o transcripts/ --format srt,vtt,txt,json
      syllabus transcribe lecture.mp4 --backend openai-whisper --model base --language zh --zh-variant tw
      syllabus transcribe *.mkv --model tiny.en --device cuda --json
      syllabus transcribe lecture.mp4 --slides       # + lecture.slides.txt/.json: slide texts with times
      syllabus transcribe /nfs/lectures/*.mp4 --ray auto -o /nfs/transcripts   # on a Ray cluster
    """
    from pipeline.api import transcribe_batch
    from pipeline.ui import STATE, bars, emit_json, err, note, warn

    cfg = STATE.config()
    asr = _asr_options(cfg, dict(backend=backend, model=model, device=device, compute_type=compute_type,
                                 language=language, zh_variant=zh_variant, beam_size=beam_size,
                                 word_timestamps=word_timestamps, vad=vad))

    def loaded(b) -> None:
        if not as_json and ray is not None:
            note(f"{b.backend} · {b.model} · one model per Ray worker")
        elif not as_json:
            split = f", encoder {b.threads[0]} / decoder {b.threads[1]} threads" if b.threads and b.threads[0] else ""
            note(f"{b.backend} · {b.model} · {b.device} {b.compute_type}{split} (loaded in {b.load_seconds:.1f} s)")

    def line(r) -> str | None:
        return None if as_json or (STATE.quiet and r.status != "failed") else _file_line(r)

    runner = None
    if ray is not None:
        from pipeline.scaleout.work import transcribe_runner

        runner = transcribe_runner(ray, cfg.model_copy(update={"asr": asr}))
    with bars(quiet=as_json, files=len(files) if ray is not None else 0, describe=line) as progress:
        batch = transcribe_batch(files, cfg, asr, output_dir, formats, restart, progress, notify=warn, on_loaded=loaded,
                                 slides=slides, runner=runner)
    if as_json:
        emit_json(batch.as_dict())
    elif STATE.quiet:
        for r in batch.failed:
            err.print(_file_line(r), highlight=False, soft_wrap=True)
    if batch.failed:
        raise typer.Exit(1)


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
    from syllabus_common.errors import SyllabusError
    from ingest.asr.crosscheck import convert_checked
    from pipeline.ui import STATE, emit_json, note

    run = convert_checked(ct2_dir, out, dtype, verify, cpu_threads=STATE.config().asr.cpu_threads if verify else 0)
    report, check = run.report, run.verify
    if as_json:
        emit_json(run.as_dict())
    else:
        note(f"wrote {report.output}: {report.tensors} tensors, {report.parameters / 1e6:.1f} M parameters, "
             f"{report.dtype}, {report.bytes / 1e6:.0f} MB in {run.seconds} s")
        if check is not None:
            note(f"verify on {verify.name}: {'same text' if check.same else 'DIFFERENT text'} "
                 f"(faster-whisper float32 vs openai-whisper, greedy)")
    if check is not None and not check.same:
        raise SyllabusError(f"converted model transcribes {verify.name} differently:\n  ct2: {check.ct2_text}\n  pt:  {check.pt_text}")


def register(app: typer.Typer) -> None:
    app.command()(transcribe)
    app.command("convert-whisper")(convert_whisper)
