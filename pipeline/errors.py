"""Moved to :mod:`syllabus_common.errors` (shared with ``ingest/``); this name stays for existing imports."""

from syllabus_common.errors import *  # noqa: F401,F403
