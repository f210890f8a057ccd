"""Crash-safe file replacement: write to a temporary name, fsync, rename, fsync the directory."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb+") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(root))


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fault_point(f"{target.name}.tmp")
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it takes ``target``'s place.

    Two renames (old aside, new in) are not one atomic step, so a crash between them leaves
    ``target`` missing and ``<target>.old`` present: :func:`recover_dir` puts the old one back.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = target.with_name(target.name + ".old")
    try:
        yield tmp
        fsync_tree(tmp)
        _fault_point(f"{target.name}.tmp")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
            _fault_point(f"{target.name}.old")
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(target: Path) -> None:
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(old, target)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)


def sweep_leftovers(folder: Path, targets: list[str]) -> list[str]:
    """Remove what interrupted atomic writes of ``targets`` left in ``folder``: temporary files and
    folders (``.<name>.<random>.tmp``) and ``<name>.old`` (put back first when ``<name>`` itself is
    missing). Call it only while holding the writer lock: a live writer's temporaries look the same.
    Returns the names removed."""
    removed: list[str] = []
    for name in targets:
        old = folder / f"{name}.old"
        if old.exists():
            recover_dir(folder / name)
            removed.append(old.name)
        for leftover in folder.glob(f".{name}.*.tmp"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover.name)
    return removed


def _fault_point(stage: str) -> None:
    """Fault injection for the crash tests: with SYLLABUS_FAULT_HOLD=<stage> the writer pauses at
    that point of an atomic write (``<name>.tmp`` written, ``<name>.old`` set aside) long enough to
    be killed there. Unset, this does nothing."""
    if os.environ.get("SYLLABUS_FAULT_HOLD") == stage:
        time.sleep(300)
