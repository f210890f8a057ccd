"""Moved to :mod:`common.atomic` (shared with ``ingest/``); this name stays for existing imports."""

from common.atomic import *  # noqa: F401,F403
