"""faster-whisper (CTranslate2) backend: the default.

Precision by device unless ``compute_type`` says otherwise: int8 on CPU (weights in int8, about 2×
faster than float32 at the same WER for Whisper base), float16 on CUDA. A precision the device
cannot run falls back loudly, the way openai-whisper reports fp16 on CPU.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np

from ingest.asr.base import Backend, DecodeOptions, Detected, ModelOptions, Segment, Word
from pipeline.errors import ConfigError, ModelNotAvailable

log = logging.getLogger(__name__)

# What to run instead when a device lacks a precision (CTranslate2 lists what each device supports).
_FALLBACK = {"float16": "float32", "bfloat16": "float32", "int8_float16": "int8", "int8_bfloat16": "int8",
             "int16": "int8"}


def resolve_device(device: str) -> tuple[str, int]:
    """``auto|cpu|cuda|cuda:N`` → CTranslate2's (device, index); CUDA is asked of CTranslate2 itself,
    which needs no torch import."""
    import ctranslate2

    n_cuda = ctranslate2.get_cuda_device_count()
    if device == "auto":
        return ("cuda", 0) if n_cuda > 0 else ("cpu", 0)
    if device == "cpu":
        return "cpu", 0
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if device.split(":")[0] != "cuda":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if index >= n_cuda:
        raise ModelNotAvailable(f"--device {device}: CTranslate2 sees {n_cuda} CUDA device(s); use --device cpu or auto")
    return "cuda", index


def resolve_compute_type(requested: str, device: str, notify=None) -> str:
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types(device)
    if requested == "auto":
        requested = "float16" if device == "cuda" else "int8"
    if requested == "default" or requested in supported:
        return requested
    fallback = _FALLBACK.get(requested, "float32")
    if fallback not in supported:
        fallback = "float32"
    message = f"{requested} is not supported on {device}; using {fallback} instead"
    (notify or log.warning)(message)
    return fallback


class FasterWhisperBackend(Backend):
    name = "faster-whisper"
    supports_vad = True

    @classmethod
    def load(cls, options: ModelOptions, notify=None) -> "FasterWhisperBackend":
        from faster_whisper import WhisperModel

        from ingest.asr.weights import resolve_ct2

        resolved = resolve_ct2(options.model, options.cache_dir, options.offline)
        device, index = resolve_device(options.device)
        compute_type = resolve_compute_type(options.compute_type, device, notify)
        try:
            model = WhisperModel(resolved.location, device=device, device_index=index, compute_type=compute_type,
                                 cpu_threads=options.cpu_threads, local_files_only=options.offline)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelNotAvailable(f"cannot load speech model {resolved.name} on {device}: {exc}") from None
        label = device if device == "cpu" else f"{device}:{index}"
        return cls(model, resolved.name, label, compute_type)

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> tuple[Iterator[Segment], Detected]:
        segments, info = self.model.transcribe(
            audio,
            language=options.language,
            beam_size=options.beam_size,
            temperature=list(options.temperatures),
            compression_ratio_threshold=options.compression_ratio_threshold,
            log_prob_threshold=options.log_prob_threshold,
            no_speech_threshold=options.no_speech_threshold,
            condition_on_previous_text=options.condition_on_previous_text,
            prompt_reset_on_temperature=options.prompt_reset_on_temperature,
            initial_prompt=options.initial_prompt,
            word_timestamps=options.word_timestamps,
            vad_filter=options.vad,
        )
        return _convert(segments), Detected(info.language, float(info.language_probability))


def _convert(segments) -> Iterator[Segment]:
    for s in segments:
        words = None if s.words is None else [Word(w.start, w.end, w.word, w.probability) for w in s.words]
        yield Segment(s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio,
                      s.temperature if s.temperature is not None else 0.0, words)
