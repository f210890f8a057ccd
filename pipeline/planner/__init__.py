"""VRAM estimator and resource planner.

Modules: ``catalog`` (model architectures and GPU cards), ``readers`` (config.json, HF directories,
GGUF headers, ``--params 7B``), ``precision`` (bytes per weight of every format), ``estimator`` (one
function per memory component), ``seed`` (the seed article's rules of thumb), ``hardware`` (what this
machine has), ``plan`` (what to run where), ``measure`` (FakeTensorMode dry run), ``report`` (tables,
JSON, plots). Nothing here imports torch at module level.
"""

from __future__ import annotations

GiB = 2**30  # bytes
GB = 10**9  # bytes
