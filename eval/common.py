"""Shared helpers for eval/ scripts: the real books when installed, machine description, KB builds."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "eval" / "work"  # git-ignored scratch space (knowledge bases built by evals)
RESULTS = ROOT / "eval" / "results"
SAMPLE_PDF = ROOT / "tests" / "fixtures" / "gpu-memory-guide.pdf"
R_MANUALS = Path("/usr/share/R/doc/manual")  # Debian package r-doc-pdf


def r_manual(name: str) -> Path | None:
    """A manual from r-doc-pdf (e.g. "R-intro.pdf") if installed, else None."""
    path = R_MANUALS / name
    return path if path.is_file() else None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", GPU " + torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}{gpu}, Python {platform.python_version()}"


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# The library setting: every r-doc-pdf manual except the two reference manuals.
LIBRARY = ("R-FAQ.pdf", "R-admin.pdf", "R-data.pdf", "R-exts.pdf", "R-intro.pdf", "R-ints.pdf", "R-lang.pdf")


def build_kb(pdf: Path | list[Path], name: str, fresh: bool = False, cfg=None):
    """Ingest ``pdf`` (one file or several) into eval/work/<name>; returns the open KB.

    Without ``fresh`` an existing KB is reused: unchanged files are skipped by their hash, and index
    files built by an older format are rebuilt from the catalog on open."""
    import shutil

    from pipeline.config import load_config
    from pipeline.kb import KnowledgeBase
    from syllabus_common.models import enforce_offline

    cfg = cfg or load_config(ROOT / "config.yaml")
    enforce_offline(cfg.offline)
    kb_dir = WORK / name
    if fresh and kb_dir.exists():
        shutil.rmtree(kb_dir)
    kb = KnowledgeBase(cfg, kb_dir, create=True)
    pdfs = pdf if isinstance(pdf, list) else [pdf]
    outcomes = kb.ingest(pdfs)
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise SystemExit(f"ingest of {failed[0].path} failed: {failed[0].message}")
    return kb


class PeakSampler:
    """The largest value ``read()`` returns while a ``with`` block runs, sampled every ``interval``
    seconds in a thread (GPU memory through NVML in the GPU checks). Re-usable block after block."""

    def __init__(self, read, interval: float = 0.02):
        self.read, self.interval, self.peak = read, interval, 0

    def __enter__(self):
        import threading

        self.peak = self.read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
