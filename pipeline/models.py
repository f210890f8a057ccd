"""Moved to :mod:`syllabus_common.models` (shared with ``ingest/``); this name stays for existing imports."""

from syllabus_common.models import *  # noqa: F401,F403
