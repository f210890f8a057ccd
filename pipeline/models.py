"""Moved to :mod:`common.models` (shared with ``ingest/``); this name stays for existing imports."""

from common.models import *  # noqa: F401,F403
