"""Moved to :mod:`syllabus_common.atomic` (shared with ``ingest/``); this name stays for existing imports."""

from syllabus_common.atomic import *  # noqa: F401,F403
