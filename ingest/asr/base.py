"""The speech-to-text contract every backend implements, and the types it speaks.

A backend turns a float32 16 kHz mono array into a stream of :class:`Segment` (times in seconds
from the start of that array) plus the language it heard. Options travel together in
:class:`DecodeOptions`; what loads the model travels in :class:`ModelOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np

# Whisper's language codes (the order of its tokenizer), for validating `--language`.
LANGUAGES = tuple(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi "
    "hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no "
    "oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo "
    "zh yue".split()
)
COMPUTE_TYPES = ("auto", "default", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")


@dataclass
class Word:
    start: float  # seconds
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str
    avg_logprob: float  # mean log-probability of the tokens; below log_prob_threshold = a failed decode
    no_speech_prob: float  # probability of the <|nospeech|> token at the window start
    compression_ratio: float  # gzip ratio of the text; above ~2.4 = a repetition loop
    temperature: float = 0.0  # the sampling temperature that produced it (> 0: a fallback happened)
    words: list[Word] | None = None

    def shifted(self, offset: float) -> "Segment":
        """The same segment with times moved by ``offset`` seconds (block → file time)."""
        words = None if self.words is None else [
            Word(w.start + offset, w.end + offset, w.word, w.probability) for w in self.words
        ]
        return Segment(self.start + offset, self.end + offset, self.text, self.avg_logprob, self.no_speech_prob,
                       self.compression_ratio, self.temperature, words)


@dataclass
class DecodeOptions:
    """How to decode; shared by every backend (each maps what it supports, loudly drops the rest).

    The thresholds are Whisper's repetition-loop guards: a window whose text compresses too well
    (``compression_ratio_threshold``) or whose tokens are too unlikely (``log_prob_threshold``) is
    decoded again at the next ``temperatures`` entry, and after such a fallback the previous text
    is no longer fed as the prompt (``prompt_reset_on_temperature``), so one loop does not seed the
    next window.
    """

    language: str | None = None  # None: detect from the first 30 s
    beam_size: int = 3  # 1 = greedy; 3 is nearly as fast with int8 and more accurate (config.yaml)
    vad: bool = True  # Silero VAD skips silence (faster-whisper)
    word_timestamps: bool = False
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.0  # reset the prompt after any fallback (temperature > 0)
    initial_prompt: str | None = None

    def whisper_kwargs(self) -> dict:
        """The settings both Whisper libraries take under the same names."""
        return dict(compression_ratio_threshold=self.compression_ratio_threshold, no_speech_threshold=self.no_speech_threshold,
                    condition_on_previous_text=self.condition_on_previous_text, initial_prompt=self.initial_prompt,
                    word_timestamps=self.word_timestamps)

    def fingerprint(self) -> dict:
        """The settings that change the recognised text (for checkpoints and caches)."""
        from dataclasses import asdict

        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class ModelOptions:
    model: str = "base"  # a bundled name, an alias, a local path, or (online) a hub id / official name
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compute_type: str = "auto"  # auto: int8 on CPU, float16 on CUDA
    cpu_threads: int = 0  # encoder threads on CPU; 0: one per core
    decoder_threads: int = 0  # faster-whisper's decoder threads on CPU; 0: one (see ingest.asr.faster)
    cache_dir: Path | None = None  # where reassembled / converted weights are kept
    offline: bool = True  # never download; only bundled models, local paths and cached files


@dataclass
class Detected:
    language: str
    probability: float


class Backend:
    """A loaded speech model. Subclasses set ``name`` and capability flags and implement
    :meth:`load` and :meth:`transcribe`."""

    name: ClassVar[str] = ""
    supports_vad: ClassVar[bool] = False
    supports_word_timestamps: ClassVar[bool] = True

    # Filled by load(): what actually runs, after "auto" is resolved (for reports and cache keys).
    model_name: str = ""
    device: str = ""
    compute_type: str = ""

    def __init__(self, model, model_name: str, device: str, compute_type: str):
        self.model = model  # the library's loaded model object
        self.model_name, self.device, self.compute_type = model_name, device, compute_type

    @classmethod
    def check(cls, options: ModelOptions) -> None:
        """Raise ModelNotAvailable now if ``options.model`` cannot be found, without loading it
        (a batch checks this once, before its first file)."""

    @classmethod
    def load(cls, options: ModelOptions, notify=None) -> "Backend":
        """Load the model. ``notify(message)`` reports loud fallbacks (e.g. an unsupported precision)."""
        raise NotImplementedError

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> tuple[Iterator[Segment], Detected]:
        """Segments of ``audio`` ((n,) float32, 16 kHz mono) as a generator, and the language."""
        raise NotImplementedError
