"""The re-ranker contract (:mod:`pipeline.rerank` holds the registry and the built-ins)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence


class Reranker(ABC):
    """Scores candidates for a question; ``name`` appears in logs and benchmarks."""

    name: str = "reranker"

    @abstractmethod
    def scores(self, query: str, hits: Sequence) -> list[float]:
        """One score per hit, same order as ``hits`` (which arrive in fused order, best first)."""


def fused_scores(hits: Sequence) -> list[float]:
    """The fused score normalised to [0, 1] (best = 1)."""
    top = max((h.score for h in hits), default=0.0) or 1.0
    return [max(h.score, 0.0) / top for h in hits]
