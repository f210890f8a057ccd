"""Speech backends by name (``asr.backend``, ``--backend``), in the registry shape every backend kind
shares (:class:`syllabus_common.registry.Registry`). A factory takes ``(ModelOptions, notify)`` and returns the
loaded :class:`~ingest.asr.base.Backend`; built-ins register through the same call as any extension or
test fake, and import their libraries only when a model is loaded.
"""

from __future__ import annotations

from syllabus_common.registry import Registry

BACKENDS = Registry("speech backend", "asr.backend")
DEFAULT_BACKEND = "faster-whisper"


def register_backend(name: str, factory, description: str = "", replace: bool = False, preflight=None) -> None:
    """Make ``name`` available to ``--backend`` and ``asr.backend``; ``factory(options, notify)`` loads it,
    ``preflight(options)`` (optional) raises ModelNotAvailable when its weights cannot be found."""
    BACKENDS.register(name, factory, description, replace, preflight)


def unregister_backend(name: str) -> None:
    BACKENDS.unregister(name)


def available_backends() -> list[str]:
    return BACKENDS.names()


def _register_class(name: str, backend_class, description: str) -> None:
    """A built-in: ``backend_class()`` imports and returns its :class:`~ingest.asr.base.Backend` class."""
    register_backend(name, lambda options, notify=None: backend_class().load(options, notify=notify), description,
                     preflight=lambda options: backend_class().check(options))


def _faster_whisper():
    from ingest.asr.faster import FasterWhisperBackend

    return FasterWhisperBackend


def _openai_whisper():
    from ingest.asr.openai_whisper import OpenAIWhisperBackend

    return OpenAIWhisperBackend


_register_class("faster-whisper", _faster_whisper, "CTranslate2 Whisper: int8 on CPU, float16 on CUDA, Silero VAD")
_register_class("openai-whisper", _openai_whisper, "the reference PyTorch Whisper: fp32 on CPU, fp16 on CUDA")
