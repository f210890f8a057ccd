"""Moved to :mod:`syllabus_common.timefmt` (shared with ``ingest/``); this name stays for existing imports."""

from syllabus_common.timefmt import *  # noqa: F401,F403
