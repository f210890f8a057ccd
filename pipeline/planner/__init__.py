"""VRAM estimator and resource planner.

Modules: ``catalog`` (model architectures and GPU cards), ``readers`` (config.json, HF directories,
GGUF headers, ``--params 7B``), ``precision`` (bytes per weight of every format), ``types`` (Settings,
Component, Estimate), ``estimator`` (``estimate()``, dispatching to ``inference``, ``training`` with
``terms`` and ``sharding``, ``whisper``, ``others`` and ``encdec``), ``overhead`` (CUDA context,
allocator slack), ``seed`` (the seed article's rules of thumb), ``hardware`` (what this machine has),
``plan`` (what to run where), ``finetune`` (how to fine-tune a model on some GPUs), ``policy`` (which
precisions to compare), ``measure`` (FakeTensorMode dry run), ``report`` (tables, JSON, plots),
``usecases`` (the library calls pipeline.api exports). Nothing here imports torch at module level.
"""

from __future__ import annotations

GiB = 2**30  # bytes
GB = 10**9  # bytes
