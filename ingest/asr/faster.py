"""faster-whisper (CTranslate2) backend: the default.

Precision by device unless ``compute_type`` says otherwise: int8 on CPU (weights in int8, about 2×
faster than float32 at the same WER for Whisper base), float16 on CUDA. A precision the device
cannot run falls back loudly, the way openai-whisper reports fp16 on CPU.

Threads on CPU are set per half of the model. The encoder is one large matrix pass per 30 s window
and scales with cores; the decoder runs token by token on a few beams, where thread handoffs cost more
than they save. Measured on the 2-core reference machine, base int8 beam 3 over the 63 s lecture clip:
encoder 0.89 s per window on 1 thread against 0.54 s on 2, while decoding the three windows took 3.43 s
on 1 thread against 4.29 s on 2. So by default the encoder gets every core and the decoder one thread.
CTranslate2 fixes the thread count per loaded model, so this takes two instances of the weights
(base int8: about 75 MB more). The decoder takes the encoder's output as its input.

Language detection encodes the first window; the transcription loop then encodes the same window
again. Within one call the encoder keeps its last result, and an identical input is not encoded
twice (on the 63 s clip: four encoder passes become three). The cache is cleared at the start of
every call, so repeated runs on the same audio (benchmarks) each pay for their own encoding.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Iterator

import numpy as np

from ingest.asr.base import Backend, DecodeOptions, Detected, ModelOptions, Segment, Word
from syllabus_common.errors import ConfigError, ModelNotAvailable

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
    """CTranslate2 Whisper (faster-whisper): int8 on CPU, float16 on CUDA, Silero VAD, the encoder on
    every core and the decoder on one thread."""

    name = "faster-whisper"
    supports_vad = True

    @classmethod
    def check(cls, options: ModelOptions) -> None:
        from ingest.asr.weights import resolve_ct2

        resolve_ct2(options.model, options.cache_dir, options.offline)

    @classmethod
    def load(cls, options: ModelOptions, notify=None) -> "FasterWhisperBackend":
        from ingest.asr.weights import resolve_ct2

        resolved = resolve_ct2(options.model, options.cache_dir, options.offline)
        device, index = resolve_device(options.device)
        compute_type = resolve_compute_type(options.compute_type, device, notify)
        encoder_threads, decoder_threads = cpu_thread_split(options.cpu_threads, options.decoder_threads, device)
        try:
            location = resolved.location
            if not os.path.isdir(location):  # a hub name (offline: false): fetched or found in the hub cache
                from faster_whisper.utils import download_model

                location = download_model(location, local_files_only=options.offline)
            model = _model_class()(location, device=device, device_index=index, compute_type=compute_type,
                                   cpu_threads=decoder_threads, encoder_threads=encoder_threads,
                                   local_files_only=options.offline)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelNotAvailable(f"cannot load speech model {resolved.name} on {device}: {exc}") from None
        label = device if device == "cpu" else f"{device}:{index}"
        backend = cls(model, resolved.name, label, compute_type)
        backend.threads = (encoder_threads, decoder_threads)
        return backend

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> tuple[Iterator[Segment], Detected]:
        from threadpoolctl import threadpool_limits

        self.model.forget()  # the encoder cache serves one call: detection and the first window
        # The log-mel features are numpy products whose sums depend on the BLAS thread count; on an
        # AVX2 CPU one thread against two turned "GPU" into "DPU" in tests/fixtures/media/clean.m4a.
        # One BLAS thread, here and in a Ray worker (which Ray starts with OMP_NUM_THREADS=1), gives
        # the same transcript everywhere.
        with threadpool_limits(limits=1, user_api="blas"):
            segments, info = self._transcribe(audio, options)
        return segments, info

    def _transcribe(self, audio: np.ndarray, options: DecodeOptions) -> tuple[Iterator[Segment], Detected]:
        segments, info = self.model.transcribe(
            audio,
            language=options.language,
            beam_size=options.beam_size,
            temperature=list(options.temperatures),
            log_prob_threshold=options.log_prob_threshold,
            prompt_reset_on_temperature=options.prompt_reset_on_temperature,
            vad_filter=options.vad,
            **options.whisper_kwargs(),
        )
        return _convert(segments), Detected(info.language, float(info.language_probability))


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_thread_split(cpu_threads: int, decoder_threads: int, device: str) -> tuple[int, int]:
    """(encoder threads, decoder threads) on CPU; 0 means every usable core for the encoder and one
    thread for the decoder (see the module note). On CUDA both are CTranslate2's default (0)."""
    if device != "cpu":
        return 0, 0
    encoder = cpu_threads or usable_cores()
    decoder = decoder_threads or 1
    return encoder, decoder


_MODEL_CLASS = None


def _model_class():
    """faster-whisper's WhisperModel with a separate encoder instance and a one-entry encoder cache
    (defined on first use: importing faster_whisper is slow)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is not None:
        return _MODEL_CLASS
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_ctranslate2_storage

    class SplitWhisperModel(WhisperModel):
        def __init__(self, path: str, *, encoder_threads: int = 0, **kwargs):
            super().__init__(path, **kwargs)
            self._encoder = self.model
            if kwargs.get("device") == "cpu" and encoder_threads != kwargs.get("cpu_threads", 0):
                self._encoder = ctranslate2.models.Whisper(path, device="cpu", compute_type=kwargs["compute_type"],
                                                           intra_threads=encoder_threads)
            self._last: tuple[np.ndarray, object] | None = None
            self._lock = threading.Lock()

        def encode(self, features: np.ndarray):
            if features.ndim == 2:
                features = np.expand_dims(features, 0)
            with self._lock:
                last = self._last
                if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
                    return last[1]
                to_cpu = self.model.device == "cuda" and len(self.model.device_index) > 1
                output = self._encoder.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)
                self._last = (np.array(features, copy=True), output)
                return output

        def forget(self) -> None:
            with self._lock:
                self._last = None

        def detect_language(self, audio=None, features=None, *args, **kwargs):
            # The transcription loop leaves out the last feature frame (its content ends one frame
            # before the array does); on audio shorter than a window, detection used it, so the two
            # first-window inputs differed by that frame and were encoded twice. Same input: one pass.
            if audio is None and features is not None and 1 < features.shape[-1] <= self.feature_extractor.nb_max_frames:
                features = features[..., :-1]
            return super().detect_language(audio, features, *args, **kwargs)

    _MODEL_CLASS = SplitWhisperModel
    return _MODEL_CLASS


def _convert(segments) -> Iterator[Segment]:
    for s in segments:
        words = None if s.words is None else [Word(w.start, w.end, w.word, w.probability) for w in s.words]
        yield Segment(s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio,
                      s.temperature if s.temperature is not None else 0.0, words)
