"""One validated configuration.

Defaults live in the repository's ``config.yaml`` (shipped as package data). A user file — from
``--config``, ``SYLLABUS_CONFIG`` or ``./config.yaml`` — is merged over them key by key. Unknown keys
and wrong types are rejected with the key's dotted name and the file it came from.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

ENV_VAR = "SYLLABUS_CONFIG"


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


class RetrievalConfig(_Strict):
    k: int = Field(ge=1, le=1000)
    fusion: Literal["rrf", "dense", "bm25"]
    rrf_k: int = Field(ge=1)
    candidates: int = Field(ge=1, le=10000)
    stemmer: str

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


class Config(_Strict):
    device: str
    offline: bool
    kb: KBConfig
    chunking: ChunkingConfig
    embedding: EmbeddingConfig
    retrieval: RetrievalConfig
    # Where the user's values came from (for messages and `syllabus config`); not a setting.
    source: str | None = Field(default=None, exclude=True)

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {value!r}")

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
        data = _merge(data, _read_yaml(user_path.read_text(encoding="utf-8"), origin))
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
