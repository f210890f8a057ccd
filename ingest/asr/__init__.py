"""Speech-to-text: backends behind one contract, and the file-level runner.

    from ingest.asr import load_backend, transcribe_file, ModelOptions, DecodeOptions
    backend = load_backend("faster-whisper", ModelOptions(model="base"))
    transcript = transcribe_file("lecture.mp4", backend, DecodeOptions(language=None))

Importing this package is cheap; a backend's library is imported when the backend is loaded.
"""

from __future__ import annotations

from ingest.asr.base import (LANGUAGES, Backend, DecodeOptions, Detected, ModelOptions, Segment,  # noqa: F401
                             Word)
from ingest.asr.registry import (BACKENDS, DEFAULT_BACKEND, available_backends, register_backend,  # noqa: F401
                                 unregister_backend)


def load_backend(name: str, options: ModelOptions, notify=None) -> Backend:
    """Load backend ``name`` with its model; unknown names fail with the list of valid ones."""
    return BACKENDS.create(name, options, notify=notify)


def check_model(name: str, options: ModelOptions) -> None:
    """Raise ModelNotAvailable (naming what to install or set) if backend ``name`` cannot find
    ``options.model``; nothing is loaded."""
    BACKENDS.preflight(name, options)


def options_from_config(asr, offline: bool = True, cache_dir=None, **overrides) -> tuple[str, ModelOptions, DecodeOptions]:
    """(backend name, model options, decode options) from an ``ASRConfig`` plus CLI overrides
    (keys of ASRConfig; ``None`` values are ignored). ``model: auto`` is resolved by the caller
    (``pipeline.speech.speech_config`` asks the planner); left as is, a backend reads it as its default."""
    values = asr.model_dump()
    values.update({k: v for k, v in overrides.items() if v is not None})
    model = ModelOptions(model=values["model"], device=values["device"], compute_type=values["compute_type"],
                         cpu_threads=values["cpu_threads"],
                         decoder_threads=values["decoder_threads"], cache_dir=cache_dir, offline=offline)
    decode = DecodeOptions(
        language=None if values["language"] == "auto" else values["language"],
        beam_size=values["beam_size"], vad=values["vad"], word_timestamps=values["word_timestamps"],
        temperatures=tuple(values["temperatures"]),
        compression_ratio_threshold=values["compression_ratio_threshold"],
        log_prob_threshold=values["log_prob_threshold"], no_speech_threshold=values["no_speech_threshold"],
        condition_on_previous_text=values["condition_on_previous_text"],
        prompt_reset_on_temperature=values["prompt_reset_on_temperature"],
        initial_prompt=values["initial_prompt"],
    )
    return values["backend"], model, decode


def transcribe_file(*args, **kwargs):
    """See :func:`ingest.asr.runner.transcribe_file` (imported lazily: it pulls in PyAV)."""
    from ingest.asr.runner import transcribe_file as run

    return run(*args, **kwargs)
