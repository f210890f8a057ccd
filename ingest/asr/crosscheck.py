"""``convert-whisper`` as one call: CTranslate2 weights (a folder or a bundled name) converted into an
openai-whisper checkpoint, optionally checked by transcribing the same audio with both."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Verification:
    audio: str
    same: bool  # equal after whitespace normalisation
    ct2_text: str
    pt_text: str


def verify_same_text(ct2_dir: str | Path, pt_path: str | Path, audio: str | Path, language: str | None = None,
                     cpu_threads: int = 0) -> Verification:
    """Transcribe ``audio`` with faster-whisper on the original (float32) and openai-whisper on the
    converted checkpoint, both greedy at temperature 0 without VAD: equal weights give equal text."""
    from ingest.asr import DecodeOptions, ModelOptions, load_backend
    from ingest.media import load_audio

    samples = load_audio(audio)
    options = DecodeOptions(language=language, beam_size=1, vad=False, temperatures=(0.0,))
    texts = []
    for backend, model, compute_type in (("faster-whisper", str(ct2_dir), "float32"),
                                         ("openai-whisper", str(pt_path), "float32")):
        engine = load_backend(backend, ModelOptions(model=model, device="cpu", compute_type=compute_type,
                                                    cpu_threads=cpu_threads))
        segments, _ = engine.transcribe(samples, options)
        texts.append(" ".join(" ".join(s.text.split()) for s in segments).strip())
        del engine
    return Verification(str(audio), texts[0] == texts[1], texts[0], texts[1])


@dataclass
class ConversionRun:
    report: object  # ingest.convert_whisper.ConversionReport
    seconds: float
    verify: Verification | None = None

    def as_dict(self) -> dict:
        data = dict(self.report.__dict__, seconds=self.seconds)
        if self.verify is not None:
            data["verify"] = self.verify.__dict__
        return data


def convert_checked(ct2_dir: str, out: str | Path, dtype: str = "float32", verify: str | Path | None = None,
                    cpu_threads: int = 0) -> ConversionRun:
    """Convert ``ct2_dir`` (a CTranslate2 folder, or a bundled name such as ``base``) to ``out``; with
    ``verify`` (an audio file), transcribe it with both models and report whether the texts match."""
    from ingest.asr.weights import bundled_name, ct2_model_dir
    from ingest.convert_whisper import convert

    source = Path(ct2_dir).expanduser()
    if not source.exists() and bundled_name(ct2_dir):
        source = ct2_model_dir(ct2_dir)
    started = time.perf_counter()
    report = convert(source, out, dtype=dtype)
    run = ConversionRun(report, round(time.perf_counter() - started, 2))
    if verify is not None:
        run.verify = verify_same_text(source, out, verify, cpu_threads=cpu_threads)
    return run
