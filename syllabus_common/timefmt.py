"""Timestamps for transcripts and citations: mm:ss, or hh:mm:ss past an hour."""

from __future__ import annotations

import re


def clock(seconds: float, force_hours: bool = False) -> str:
    total = max(0, int(seconds))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if h or force_hours else f"{m:02d}:{s:02d}"


def span(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    hours = (end or start) >= 3600
    return clock(start, hours) if end is None else f"{clock(start, hours)}–{clock(end, hours)}"


def duration(seconds: float) -> str:
    """A length of audio for messages: "0.5 s", "7.2 s", "63 s" (never "0 s" for a short clip)."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


_WINDOW = re.compile(r"\d{1,2}(?::\d{2}){1,2}\s*[–-]\s*\d{1,2}(?::\d{2}){1,2}")


def own_heading(section_path: str | None, sep: str = " > ") -> str:
    """The last title of a section path; empty when it is only a time window, which a passage's
    place (its mm:ss span) already says."""
    last = section_path.split(sep)[-1].strip() if section_path else ""
    return "" if is_window(last) else last


def is_window(text: str) -> bool:
    """Whether ``text`` is only a time window ("00:00–01:02"): the name a recording's section
    gets when it has no title of its own, which the passage's place already says."""
    return _WINDOW.fullmatch(text.strip()) is not None
