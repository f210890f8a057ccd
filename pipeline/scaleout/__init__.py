"""Scale-out over a Ray cluster (optional: ``pip install 'syllabus[ray]'``, or ``make ray``).

The slow stages of an ingest run per file and independently (decode and transcription, PDF
extraction and OCR, chunking and embedding), so Ray actors run them on the cluster's workers, each
loading its models once; the one KB writer on the driver commits what comes back, exactly as a
local ingest does (:func:`pipeline.kb.writer.commit`). Speech-only batches (`transcribe --ray`)
work the same way. See README "Scaling out".

Inputs and the derived-data caches are read and written by the workers at the paths the driver
names: on a multi-node cluster those paths must be on a filesystem every node mounts at the same
place (NFS, a parallel filesystem). The knowledge base is written by the driver alone.
"""

from __future__ import annotations

import logging

from syllabus_common.errors import ConfigError

INSTALL_HINT = "pip install 'syllabus[ray]' (or `make ray` in a source checkout)"
LOCAL = "local"  # `--ray` without an address: a Ray instance on this machine


class RayMissing(ConfigError):
    """--ray was asked for and Ray is not installed."""


def require_ray():
    """The ``ray`` module, or one line naming what to install."""
    try:
        import ray
    except ImportError:
        raise RayMissing(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None):
    """Ray, connected: to the cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``),
    or to a new local instance for ``local``/None. A session already connected (a test's, a
    notebook's) is reused."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # Ray's own notes (token set-up, session folders) are for --verbose; our errors say what failed.
    level = logging.INFO if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else logging.ERROR
    try:
        if address in (None, "", LOCAL):
            ray.init(logging_level=level, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, logging_level=level, log_to_driver=False)
    except ConnectionError as exc:
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({exc}); start one with `ray start --head`") from None
    return ray
