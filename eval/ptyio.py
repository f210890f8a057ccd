"""Reading a program's output from a pseudo-terminal, byte by byte, with deadlines (the chat tests and
the startup bench drive `syllabus chat` this way)."""

from __future__ import annotations

import os
import select
import time
from typing import Callable


def read_while(fd: int, seen: bytearray, more: Callable[[], bool], timeout: float) -> bool:
    """Read from ``fd`` into ``seen`` one byte at a time (the arrival of each is what gets timed) while
    ``more()``; False on timeout or end of output."""
    deadline = time.monotonic() + timeout
    while more():
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        try:
            chunk = os.read(fd, 1)
        except OSError:
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


def read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float) -> bool:
    """Read until ``seen`` holds ``wanted``."""
    return read_while(fd, seen, lambda: wanted not in seen, timeout)


def first_byte_after(fd: int, seen: bytearray, start: int, timeout: float) -> bool:
    """Read until ``seen`` holds a byte other than white space after position ``start``."""
    return read_while(fd, seen, lambda: len(seen) <= start or bytes(seen[start:]).isspace(), timeout)
