"""Speech backends by name. Built-ins register through the same call as any extension or test fake.

Factories import their libraries only when a backend is used, so listing backends (and validating a
config) stays instant.
"""

from __future__ import annotations

from typing import Callable

from ingest.asr.base import Backend, BackendInfo
from pipeline.errors import ConfigError

_BACKENDS: dict[str, BackendInfo] = {}
DEFAULT_BACKEND = "faster-whisper"


def register_backend(name: str, factory: Callable[[], type[Backend]], description: str = "") -> None:
    """Make ``name`` available to ``--backend`` and ``asr.backend``; re-registering replaces it."""
    _BACKENDS[name] = BackendInfo(name, factory, description)


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def backend_info(name: str) -> BackendInfo:
    info = _BACKENDS.get(name)
    if info is None:
        raise ConfigError(f"unknown speech backend {name!r}; available: {', '.join(available_backends())}")
    return info


def get_backend(name: str) -> type[Backend]:
    """The backend class for ``name`` (imports its library now)."""
    return backend_info(name).factory()


def _faster_whisper() -> type[Backend]:
    from ingest.asr.faster import FasterWhisperBackend

    return FasterWhisperBackend


def _openai_whisper() -> type[Backend]:
    from ingest.asr.openai_whisper import OpenAIWhisperBackend

    return OpenAIWhisperBackend


register_backend("faster-whisper", _faster_whisper, "CTranslate2 Whisper: int8 on CPU, float16 on CUDA, Silero VAD")
register_backend("openai-whisper", _openai_whisper, "the reference PyTorch Whisper: fp32 on CPU, fp16 on CUDA")
