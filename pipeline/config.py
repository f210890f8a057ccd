"""One validated configuration.

Defaults live in the repository's ``config.yaml`` (shipped as package data). A user file — from
``--config``, ``SYLLABUS_CONFIG`` or ``./config.yaml`` — is merged over them key by key. Unknown keys
and wrong types are rejected with the key's dotted name and the file it came from.
"""

from __future__ import annotations

import copy
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from syllabus_common.errors import ConfigError

ENV_VAR = "SYLLABUS_CONFIG"


def _device(value: str) -> str:
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {value!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class KBConfig(_Strict):
    dir: str
    hnsw_threshold: int = Field(ge=1)
    hnsw_m: int = Field(ge=4, le=256)
    hnsw_ef_search: int = Field(ge=1)

    @property
    def path(self) -> Path:
        return Path(os.path.expanduser(self.dir)).resolve()


class ChunkingConfig(_Strict):
    size: int = Field(ge=16, le=8192)
    overlap: int = Field(ge=0)
    strip_headers: bool

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "ChunkingConfig":
        if self.overlap >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be smaller than chunking.size ({self.size})")
        return self


class EmbeddingConfig(_Strict):
    model: str = Field(min_length=1)
    batch_size: int = Field(ge=1, le=4096)
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    runtime: Literal["onnx", "torch"]


class RerankConfig(_Strict):
    method: str = Field(min_length=1)  # a registered re-ranker (pipeline.rerank)
    depth: int = Field(ge=1, le=1000)
    model: str | None = None
    weights: dict[str, float]  # features re-ranker: feature → weight (pipeline.rerank.FEATURES)
    llm_passages: int = Field(ge=1, le=100)  # llm re-ranker: passages the model reads
    llm_weight: float = Field(ge=0)  # llm re-ranker: weight per nat of log-likelihood

    @field_validator("weights")
    @classmethod
    def _known_features(cls, value: dict[str, float]) -> dict[str, float]:
        from pipeline.rerank import FEATURES

        unknown = sorted(set(value) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)}; valid: {', '.join(FEATURES)}")
        if any(v < 0 for v in value.values()):
            raise ValueError("weights must be ≥ 0")
        return value


class ExpandConfig(_Strict):
    method: str = Field(min_length=1)  # a registered query expander (pipeline.expand): none, llm
    max_new_tokens: int = Field(ge=1, le=1024)  # llm: length of the answer the search also matches
    dense: bool  # the dense search embeds question + answer too (else BM25 alone matches the answer)


class DiversifyConfig(_Strict):
    max_per_doc: int = Field(ge=0)
    margin: float = Field(ge=0)
    max_per_page: int = Field(ge=0)


class RetrievalConfig(_Strict):
    k: int = Field(ge=1, le=1000)
    fusion: Literal["rrf", "dense", "bm25"]
    rrf_k: int = Field(ge=1)
    candidates: int = Field(ge=1, le=10000)
    stemmer: str
    scope_from_question: bool
    rerank: RerankConfig
    expand: ExpandConfig
    diversify: DiversifyConfig

    @field_validator("stemmer")
    @classmethod
    def _known_stemmer(cls, value: str) -> str:
        if value == "none":
            return value
        import Stemmer  # PyStemmer; light, C extension

        valid = Stemmer.algorithms()
        if value not in valid:
            raise ValueError(f"unknown stemmer {value!r}; valid: none, {', '.join(sorted(valid))}")
        return value


class ASRConfig(_Strict):
    """Speech-to-text (`syllabus transcribe`, and `ingest` of audio/video files)."""

    backend: str = Field(min_length=1)
    model: str = Field(min_length=1)
    device: str
    compute_type: str
    language: str
    vad: bool
    beam_size: int = Field(ge=1, le=16)
    word_timestamps: bool
    zh_variant: Literal["none", "tw", "hk", "cn"]
    temperatures: list[float] = Field(min_length=1)
    compression_ratio_threshold: float | None = Field(gt=0)
    log_prob_threshold: float | None
    no_speech_threshold: float | None = Field(ge=0, le=1)
    condition_on_previous_text: bool
    prompt_reset_on_temperature: float = Field(ge=0, le=1)
    initial_prompt: str | None
    cpu_threads: int = Field(ge=0, le=1024)
    decoder_threads: int = Field(ge=0, le=1024)
    block_seconds: float = Field(ge=30, le=7200)
    section_seconds: float = Field(ge=10)
    formats: list[str] = Field(min_length=1)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from ingest.asr.registry import BACKENDS  # names only; no speech library imported

        return BACKENDS.validate(value)

    _asr_device = field_validator("device")(classmethod(lambda cls, value: _device(value)))

    @field_validator("compute_type")
    @classmethod
    def _compute_type(cls, value: str) -> str:
        from ingest.asr.base import COMPUTE_TYPES

        if value not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {value!r}; valid: {', '.join(COMPUTE_TYPES)}")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        from ingest.asr.base import LANGUAGES

        if value != "auto" and value not in LANGUAGES:
            raise ValueError(f"unknown language {value!r}; use auto or a Whisper code ({', '.join(LANGUAGES)})")
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        valid = ("srt", "vtt", "txt", "json")
        bad = [v for v in value if v not in valid]
        if bad:
            raise ValueError(f"unknown transcript format(s) {', '.join(bad)}; valid: {', '.join(valid)}")
        return value


class OCRConfig(_Strict):
    """OCR of pages without a text layer (scans, CBZ) and of lecture-video slides."""

    enabled: Literal["auto", "always", "never"]
    engine: Literal["rapidocr", "tesseract"]
    languages: list[Literal["en", "zh-TW", "zh-CN"]] = Field(min_length=1)
    dpi: int = Field(ge=72, le=600)
    threads: int = Field(ge=0, le=1024)


class SlidesConfig(_Strict):
    """Slides found in lecture videos (`ingest`, `transcribe --slides`)."""

    enabled: bool
    sample_seconds: float = Field(gt=0, le=60)
    grid: int = Field(ge=2, le=32)
    cell_change: float = Field(gt=0, le=255)
    min_changed_cells: float = Field(gt=0, le=1)
    stable_seconds: float = Field(ge=0, le=600)


class LLMConfig(_Strict):
    """The language model behind `ask`, `summarize` and `serve` (pipeline/llm)."""

    backend: str = Field(min_length=1)
    model: str = Field(min_length=1)
    gguf_file: str | None
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8", "int4"]
    context: int = Field(ge=0, le=1_048_576)
    max_new_tokens: int = Field(ge=1, le=65536)
    temperature: float = Field(ge=0, le=5)
    top_p: float = Field(gt=0, le=1)
    repetition_penalty: float = Field(ge=1, le=3)
    seed: int | None
    threads: int = Field(ge=0, le=1024)
    base_url: str = Field(min_length=1)
    api_key_env: str
    timeout: float = Field(gt=0)
    retries: int = Field(ge=0, le=20)
    concurrency: int = Field(default=1, ge=1, le=256)

    @field_validator("backend")
    @classmethod
    def _known_llm_backend(cls, value: str) -> str:
        from pipeline.llm.registry import BACKENDS  # names only; no model library imported

        return BACKENDS.validate(value)


class ServeConfig(_Strict):
    """`syllabus serve`: the request queue in front of the one local model (pipeline/llm/scheduler.py)."""

    max_queue: int = Field(ge=0, le=10_000)
    queue_timeout: float = Field(gt=0)
    request_timeout: float = Field(gt=0)
    shutdown_grace: float = Field(ge=0, le=600)


class PromptsConfig(_Strict):
    dir: str | None

    @property
    def path(self) -> Path | None:
        return Path(os.path.expanduser(self.dir)).resolve() if self.dir else None


class AskConfig(_Strict):
    min_similarity: float = Field(ge=-1, le=1)
    context_tokens: int = Field(ge=0)
    mode: Literal["auto", "extractive", "generative"] = "auto"
    evidence: int = Field(default=3, ge=1, le=10)


class SummarizeConfig(_Strict):
    level: str
    min_tokens: int = Field(ge=0)
    max_pages: int = Field(ge=1)
    window_pages: int = Field(ge=1)
    mode: Literal["auto", "extractive", "generative"]
    overview_points: int = Field(ge=1, le=50)
    summary_tokens: int = Field(ge=16)
    book_tokens: int = Field(ge=16)

    @field_validator("level")
    @classmethod
    def _valid_level(cls, value: str) -> str:
        if value in ("chapter", "section") or (value.isdigit() and 1 <= int(value) <= 9):
            return value
        raise ValueError(f"level must be chapter, section or a table-of-contents depth 1-9, not {value!r}")


class Config(_Strict):
    device: str
    offline: bool
    kb: KBConfig
    chunking: ChunkingConfig
    embedding: EmbeddingConfig
    retrieval: RetrievalConfig
    llm: LLMConfig
    serve: ServeConfig
    prompts: PromptsConfig
    ask: AskConfig
    summarize: SummarizeConfig
    asr: ASRConfig
    ocr: OCRConfig
    slides: SlidesConfig
    # Where the user's values came from (for messages and `syllabus config`); not a setting.
    source: str | None = Field(default=None, exclude=True)

    _valid_device = field_validator("device")(classmethod(lambda cls, value: _device(value)))

    def resolved_device(self) -> str:
        """The torch device string to use. Importing torch is deferred to here."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def default_config_text() -> str:
    return resources.files("syllabus_data").joinpath("config.yaml").read_text(encoding="utf-8")


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{origin}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


# Keys that earlier releases accepted and that no longer do anything: a user's file that still sets one
# loads, with a one-line note on stderr, instead of failing as an unknown key.
RETIRED = {
    ("summarize", "chunk_tokens"): "summaries are built from key points now, not from packed chunks",
}


def _retire(data: dict[str, Any], origin: str) -> dict[str, Any]:
    for (section, key), why in RETIRED.items():
        node = data.get(section)
        if isinstance(node, dict) and key in node:
            node.pop(key)
            print(f"syllabus: {origin}: '{section}.{key}' is no longer used ({why}); ignored", file=sys.stderr)
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation(exc: ValidationError, origin: str) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"'{key}': {msg} (got {err.get('input')!r})")
    return f"{origin}: " + "; ".join(problems)


def user_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The user's config file: ``--config``, then ``$SYLLABUS_CONFIG``, then ``./config.yaml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    local = Path.cwd() / "config.yaml"
    return local if local.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load defaults, merge the user's file and ``overrides`` (dotted keys allowed), validate."""
    data = _read_yaml(default_config_text(), "built-in config.yaml")
    origin = "built-in config.yaml"
    user_path = user_config_path(path)
    if user_path is not None:
        if not user_path.is_file():
            raise ConfigError(f"config file not found: {user_path}")
        origin = str(user_path)
        try:
            text = user_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{origin}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read ({exc.strerror})") from None
        data = _merge(data, _retire(_read_yaml(text, origin), origin))
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, origin)) from None
    cfg.source = origin
    return cfg


def dump_config(cfg: Config) -> str:
    """The resolved configuration as YAML (what `syllabus config` prints)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
