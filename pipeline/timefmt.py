"""Moved to :mod:`common.timefmt` (shared with ``ingest/``); this name stays for existing imports."""

from common.timefmt import *  # noqa: F401,F403
