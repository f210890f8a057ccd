"""Moved to :mod:`common.errors` (shared with ``ingest/``); this name stays for existing imports."""

from common.errors import *  # noqa: F401,F403
