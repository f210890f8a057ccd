"""Re-rankers that need a model: a sentence-transformers cross-encoder, or the configured LLM.

Both are optional (``retrieval.rerank.method: cross-encoder`` or ``llm``) and cost far more than the
default ``features`` re-ranker: a cross-encoder reads every (question, passage) pair, an LLM
generates for each. Their scores are combined with the fused order so that ties and a weak model
fall back to it rather than to noise.
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

from syllabus_common.errors import ConfigError, ModelNotAvailable
from pipeline.rerank_base import Reranker, fused_scores

log = logging.getLogger(__name__)

# Models measured as unable to judge relevance (eval/results/rerank_llm.md): their yes/no is noise.
UNABLE_LLMS = frozenset({"SmolLM2-135M-Instruct"})
_PROMPT = (
    "Does the passage answer the question? Reply with one word: yes or no.\n\n"
    "Question: {question}\n\nPassage ({section}):\n{text}"
)


class CrossEncoderReranker(Reranker):
    """A sentence-transformers CrossEncoder (local folder, or hub id in the HF cache when offline)."""

    name = "cross-encoder"

    def __init__(self, model, fused_weight: float = 0.1):
        self.model = model
        self.fused_weight = fused_weight

    @classmethod
    def from_config(cls, cfg) -> "CrossEncoderReranker":
        from syllabus_common.models import enforce_offline, resolve_model_path

        spec = cfg.retrieval.rerank.model
        if not spec:
            raise ConfigError("retrieval.rerank.method is cross-encoder but retrieval.rerank.model is not set "
                              "(a CrossEncoder folder, or a hub id already in the Hugging Face cache)")
        enforce_offline(cfg.offline)
        path = resolve_model_path(spec, "cross-encoder", cfg.offline)
        from sentence_transformers import CrossEncoder

        try:
            model = CrossEncoder(path, device=cfg.resolved_device(), local_files_only=cfg.offline)
        except Exception as exc:
            raise ModelNotAvailable(f"cannot load cross-encoder {spec!r}: {exc}") from None
        return cls(model)

    def scores(self, query: str, hits: Sequence) -> list[float]:
        import numpy as np

        if not hits:
            return []
        raw = np.asarray(self.model.predict([(query, f"{h.section}\n{h.text}") for h in hits],
                                            show_progress_bar=False), dtype=np.float64).reshape(len(hits), -1)[:, -1]
        span = float(raw.max() - raw.min()) or 1.0
        return [float((r - raw.min()) / span) + self.fused_weight * f for r, f in zip(raw, fused_scores(hits))]


class LLMReranker(Reranker):
    """The configured LLM answers "does this passage answer the question?" for each candidate.

    Pointwise yes/no (one generated token each); "yes" adds 1 to the fused score, so the order within
    the yes and the no group stays the fused one. ``depth`` limits the candidates it reads (cost)."""

    name = "llm"

    def __init__(self, llm, depth: int = 10):
        self.llm = llm
        self.depth = depth

    @classmethod
    def from_config(cls, cfg, llm=None) -> "LLMReranker":
        if llm is None:
            if cfg.llm.model in UNABLE_LLMS:
                raise ConfigError(
                    f"retrieval.rerank.method llm: {cfg.llm.model} cannot judge relevance (measured: "
                    "eval/results/rerank_llm.md); configure a larger llm.model or use the features re-ranker")
            from pipeline.llm import context_for, load_llm

            llm = load_llm(cfg.llm, context_for(cfg))
        return cls(llm)

    def judge(self, query: str, hit) -> bool:
        from pipeline.llm import GenerationOptions

        prompt = _PROMPT.format(question=query, section=hit.section or hit.title, text=hit.text)
        reply = self.llm.generate([{"role": "user", "content": prompt}],
                                  GenerationOptions(max_new_tokens=3, temperature=0.0)).text
        return re.match(r"\W*yes\b", reply.strip().lower()) is not None

    def scores(self, query: str, hits: Sequence) -> list[float]:
        fused = fused_scores(hits)
        return [f + (1.0 if i < self.depth and self.judge(query, h) else 0.0) for i, (h, f) in enumerate(zip(hits, fused))]
