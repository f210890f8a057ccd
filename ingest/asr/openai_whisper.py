"""openai-whisper (PyTorch) backend: the reference implementation.

Models, in order: a ``.pt`` checkpoint path; an official name (``base``, ``small``, ...) whose
checkpoint is already in ``~/.cache/whisper``; a bundled CTranslate2 model (``base``, ``tiny.en``)
or CTranslate2 folder, converted once into the cache by :mod:`ingest.convert_whisper`; and, only
with ``offline: false``, an official name downloaded by openai-whisper. fp16 on CUDA, fp32 on CPU.

It has no VAD, and it resets the prompt only after fallbacks above temperature 0.5 (built in);
transcription is not streamed inside a block, so progress moves block by block.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ingest.asr.base import Backend, DecodeOptions, Detected, ModelOptions, Segment, Word
from syllabus_common.errors import ModelNotAvailable

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Load an openai-whisper checkpoint (``weights_only``: a checkpoint cannot run code), applying
    the ``alignment_heads`` that :func:`ingest.convert_whisper.convert` stores."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])  # fp16 tensors are upcast into fp32 parameters
    heads = checkpoint.get("alignment_heads")
    if heads is not None:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        mask[heads[:, 0], heads[:, 1]] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device)


def _whisper_cache() -> Path:
    default = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.getenv("XDG_CACHE_HOME", default)) / "whisper"


def _converted(ct2_dir: Path, name: str, cache_dir: Path | None) -> Path:
    """A float16 .pt converted from a CTranslate2 folder, kept in the cache (fp16 → fp32 on load is
    exact, so storing fp16 halves the file without changing a single weight)."""
    from ingest.asr.weights import default_cache_dir
    from ingest.convert_whisper import convert
    from syllabus_common.modelcache import cached_file, content_key

    key = content_key([ct2_dir / "model.bin"], "ct2-to-openai-whisper-fp16-v1")[:12]  # by content: once per machine
    target = Path(cache_dir or default_cache_dir()) / "models" / f"openai-whisper-{name}-{key}.pt"

    def build(tmp: Path) -> None:
        log.info("converting %s to an openai-whisper checkpoint at %s", ct2_dir, target)
        convert(ct2_dir, tmp, dtype="float16")

    return cached_file(target, build)


def resolve_checkpoint(model: str, cache_dir: Path | None, offline: bool) -> tuple[str, str]:
    """(name, what whisper.load_model or load_checkpoint takes) for a model value."""
    import whisper

    from ingest.asr.weights import bundled_name, ct2_model_dir

    path = Path(model).expanduser()
    if path.is_file():
        return path.stem, str(path.resolve())
    if path.is_dir() and (path / "model.bin").is_file():
        return path.resolve().name, str(_converted(path, path.resolve().name, cache_dir))
    official = "base" if model == "auto" else model
    if official in whisper._MODELS and (_whisper_cache() / f"{official}.pt").is_file():
        return official, official  # an official checkpoint the user already has
    bundled = bundled_name(model)
    if bundled is not None:
        return bundled, str(_converted(ct2_model_dir(bundled, cache_dir), bundled, cache_dir))
    if official in whisper._MODELS and not offline:
        return official, official  # openai-whisper downloads it
    choices = ", ".join(sorted(whisper._MODELS))
    raise ModelNotAvailable(
        f"openai-whisper model {model!r} is not on this machine"
        + (" and offline mode is on" if offline else "")
        + f"; use a .pt path, base or tiny.en (converted from the bundled weights), or an official name ({choices})"
    )


def resolve_torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotAvailable(f"--device {device}: PyTorch sees no CUDA device; use --device cpu or auto")
    return device


class OpenAIWhisperBackend(Backend):
    """The reference PyTorch Whisper: fp32 on CPU, fp16 on CUDA; CTranslate2 weights are converted once."""

    name = "openai-whisper"
    supports_vad = False

    @classmethod
    def check(cls, options: ModelOptions) -> None:
        from ingest.asr.weights import bundled_name

        path = Path(options.model).expanduser()
        if path.is_file() or (path.is_dir() and (path / "model.bin").is_file()) or bundled_name(options.model):
            return
        resolve_checkpoint(options.model, options.cache_dir, options.offline)  # raises with the valid choices

    @classmethod
    def load(cls, options: ModelOptions, notify=None) -> "OpenAIWhisperBackend":
        import torch
        import whisper

        def loud(message: str) -> None:
            (notify or log.warning)(message)

        name, location = resolve_checkpoint(options.model, options.cache_dir, options.offline)
        device = resolve_torch_device(options.device)
        cuda = device.startswith("cuda")
        compute_type = options.compute_type
        if compute_type in ("auto", "default"):
            compute_type = "float16" if cuda else "float32"
        elif compute_type == "float16" and not cuda:
            loud("FP16 is not supported on CPU; using FP32 instead")
            compute_type = "float32"
        elif compute_type not in ("float16", "float32"):
            fallback = "float16" if cuda else "float32"
            loud(f"openai-whisper runs float16 or float32, not {compute_type}; using {fallback} instead")
            compute_type = fallback
        if options.cpu_threads > 0 and not cuda:
            torch.set_num_threads(options.cpu_threads)
        try:
            if Path(location).is_file():
                model = load_checkpoint(location, device)
            else:
                model = whisper.load_model(location, device=device)
        except (RuntimeError, OSError, KeyError) as exc:
            raise ModelNotAvailable(f"cannot load openai-whisper model {name}: {exc}") from None
        return cls(model, name, device, compute_type)

    def detect_language(self, audio: np.ndarray) -> Detected:
        import whisper

        if not self.model.is_multilingual:
            return Detected("en", 1.0)
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), self.model.dims.n_mels).to(self.model.device)
        if self.compute_type == "float16":
            mel = mel.half()
        _, probs = self.model.detect_language(mel)
        language = max(probs, key=probs.get)
        return Detected(language, float(probs[language]))

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> tuple[Iterator[Segment], Detected]:
        detected = Detected(options.language, 1.0) if options.language else self.detect_language(audio)
        result = self.model.transcribe(
            audio,
            verbose=None,
            language=detected.language,
            temperature=tuple(options.temperatures),
            logprob_threshold=options.log_prob_threshold,
            beam_size=options.beam_size if options.beam_size > 1 else None,  # None: greedy decoder
            fp16=self.compute_type == "float16",
            **options.whisper_kwargs(),
        )
        return _convert(result["segments"]), detected


def _convert(segments: list[dict]) -> Iterator[Segment]:
    for s in segments:
        words = None
        if "words" in s:
            words = [Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in s["words"]]
        yield Segment(float(s["start"]), float(s["end"]), s["text"], float(s["avg_logprob"]), float(s["no_speech_prob"]),
                      float(s["compression_ratio"]), float(s["temperature"]), words)
