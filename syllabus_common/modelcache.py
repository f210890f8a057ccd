"""Converted model files in the user cache, shared by every knowledge base on the machine.

Conversions (GGUF → safetensors, ONNX exports of the embedding model, the joined Whisper weights)
are keyed by the SHA-256 of their source files, so the same model installed in two virtual
environments, or used by two KBs, is converted once. A source file is hashed once per version:
the digest is remembered under ``hashes/`` by path, size and modification time.

A conversion is made under a file lock into a temporary folder that is renamed into place, so two
processes starting at once convert once, and a crash leaves no half-written folder behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

from syllabus_common.models import user_cache_dir

log = logging.getLogger(__name__)

MARKER = "syllabus-source.json"  # written last into a finished conversion: its sources and settings


def models_dir() -> Path:
    return user_cache_dir() / "models"


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, mtime) and remembered in the cache."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo = user_cache_dir() / "hashes" / (hashlib.sha256(str(path).encode()).hexdigest()[:24] + ".json")
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved.get("stamp") == stamp and len(saved.get("sha256", "")) == 64:
            return saved["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        from syllabus_common.atomic import atomic_write_text

        atomic_write_text(memo, json.dumps({"stamp": stamp, "sha256": digest}))
    except OSError as exc:  # a read-only cache only costs hashing again next time
        log.debug("cannot remember the hash of %s: %s", path, exc)
    return digest


def content_key(paths: list[Path], recipe: str = "") -> str:
    """16 hex digits naming a conversion of these files (by content) made with ``recipe``."""
    h = hashlib.sha256(recipe.encode())
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


def read_marker(folder: Path) -> dict | None:
    """The finished conversion's marker, or None while it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_once(target: Path, build: Callable[[Path], dict], ready: Callable[[Path], dict | None] = read_marker,
               notify: Callable[[str], None] | None = None, message: str = "") -> tuple[Path, dict]:
    """``target`` holding a finished conversion; ``build(tmp)`` fills a temporary folder and returns the
    marker, and the folder is renamed to ``target`` only when it is whole.

    Concurrent callers wait on a lock beside ``target`` and then find it made. Returns (folder, marker).
    """
    found = ready(target)
    if found is not None:
        return target, found
    from filelock import FileLock

    from syllabus_common.atomic import atomic_dir

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        found = ready(target)
        if found is not None:
            return target, found
        if notify and message:
            notify(message)
        with atomic_dir(target) as tmp:
            marker = build(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    return target, marker


def cached_file(target: Path, build: Callable[[Path], None]) -> Path:
    """A single converted file made once under a lock: ``build(tmp)`` writes a temporary file that is
    renamed to ``target``."""
    if target.is_file():
        return target
    from filelock import FileLock

    from syllabus_common.atomic import atomic_path

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not target.is_file():
            with atomic_path(target) as tmp:
                build(tmp)
    return target

