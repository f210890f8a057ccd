"""Test helpers for speech: a fake backend registered through the real registry, fixture paths,
and the WER measure the issue specifies (jiwer after openai-whisper's EnglishTextNormalizer)."""

from __future__ import annotations

import os
from dataclasses import replace
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.asr import register_backend
from ingest.asr.base import Backend, DecodeOptions, Detected, ModelOptions, Segment

MEDIA = Path(__file__).parent / "fixtures" / "media"


@pytest.fixture(scope="session")
def asr_cache(tmp_path_factory):
    """Joined / converted weights go to a session temp folder, never to the user's ~/.cache.
    (Test modules import this fixture.)"""
    path = tmp_path_factory.getbasetemp() / "syllabus-cache"
    old = os.environ.get("SYLLABUS_CACHE")
    os.environ["SYLLABUS_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SYLLABUS_CACHE", None)
    else:
        os.environ["SYLLABUS_CACHE"] = old


def reference(name: str) -> str:
    return (MEDIA / f"{name}.txt").read_text(encoding="utf-8")


def wer(ref: str, hyp: str) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return jiwer.wer(norm(ref), norm(hyp))


class FakeBackend(Backend):
    """One segment per ``SEGMENT`` seconds of whatever audio it is given, text "part N", after
    sleeping ``FAKE_ASR_DELAY`` seconds each (so a test can kill it mid-file). Every call is
    recorded: (audio length in seconds, options)."""

    name = "fake"
    supports_vad = True
    SEGMENT = 2.0
    calls: list[tuple[float, DecodeOptions]] = []
    text = "part"
    language = "en"

    @classmethod
    def load(cls, options: ModelOptions, notify=None) -> "FakeBackend":
        return cls(None, f"fake-{options.model}", "cpu", "int8")

    def transcribe(self, audio: np.ndarray, options: DecodeOptions):
        length = len(audio) / 16_000
        FakeBackend.calls.append((length, replace(options)))  # a copy: the runner updates its own
        delay = float(os.environ.get("FAKE_ASR_DELAY", "0"))

        def segments():
            start, n = 0.0, 0
            while start < length - 1e-6:
                end = min(start + self.SEGMENT, length)
                if delay:
                    time.sleep(delay)
                yield Segment(start, end, f" {self.text} {n}", -0.2, 0.01, 1.1)
                start, n = end, n + 1

        return segments(), Detected(options.language or self.language, 0.97)


def register_fake() -> type[FakeBackend]:
    FakeBackend.calls = []
    register_backend("fake", FakeBackend.load, "test double", replace=True)
    return FakeBackend


@pytest.fixture
def fake():
    """The fake backend, registered as "fake" for one test."""
    yield register_fake()
    from ingest.asr import unregister_backend

    unregister_backend("fake")
