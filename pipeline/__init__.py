"""Syllabus: a local, offline study assistant for books and lectures.

The public API lives in :mod:`pipeline.api` and is re-exported here on first use (``from pipeline
import answer``), so ``import pipeline`` (and ``syllabus --help``) stays instant.
"""

from importlib import import_module

__version__ = "0.1.0"


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    api = import_module("pipeline.api")
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *import_module("pipeline.api").__all__])
