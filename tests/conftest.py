"""Shared fixtures: real models loaded once per session, knowledge bases in temp folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # tests/pdfgen.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def cfg():
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml")


@pytest.fixture(scope="session")
def embedder(cfg):
    from pipeline.embed import Embedder

    e = Embedder.from_config(cfg)
    e.model  # load once for the whole session
    return e


@pytest.fixture
def kb_factory(cfg, embedder, tmp_path):
    """Open (or create) a knowledge base under tmp_path sharing the session's embedder."""
    from pipeline.kb import KnowledgeBase

    opened = []

    def make(name: str = "kb", create: bool = True):
        kb = KnowledgeBase(cfg, tmp_path / name, embedder=embedder, create=create)
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


@pytest.fixture(scope="session")
def topic_pdf(tmp_path_factory):
    import pdfgen

    return pdfgen.topic_book(tmp_path_factory.mktemp("pdf") / "topics.pdf")


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed console entry point in a fresh process, as a user runs it."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=full_env,
        cwd=cwd or ROOT, timeout=timeout,
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: needs the Ray extra (runs on a local Ray instance)")


def pytest_collection_modifyitems(items):
    """A test on the local Ray instance (the ``ray_session`` fixture) is marked ``ray``: `make test`
    deselects those only where the Ray extra cannot be installed, and says so."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
