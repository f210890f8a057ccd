"""Re-rankers that need a model: a sentence-transformers cross-encoder, or the configured LLM.

Both are optional (``retrieval.rerank.method: cross-encoder`` or ``llm``) and cost far more than the
default ``features`` re-ranker: a cross-encoder reads every (question, passage) pair, the LLM reads
each of the first passages with the question. Their scores are combined with the fused or features
order so that ties and a weak model fall back to it rather than to noise.
"""

from __future__ import annotations

import logging
from typing import Sequence

from syllabus_common.errors import ConfigError, ModelNotAvailable
from pipeline.rerank_base import Reranker, fused_scores

log = logging.getLogger(__name__)

# The question the LLM is asked to write for a passage; its likelihood is the passage's score.
_PROMPT = "{head}\n{text}\n\nWrite a question that this passage answers."


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
    """Query likelihood under the configured LLM (Sachan et al., "Improving Passage Retrieval with
    Zero-Shot Question Generation", EMNLP 2022): how likely the model finds the question as one the
    passage answers, log P(question | passage), added to the ``features`` re-ranker's score.

    The ``features`` re-ranker orders all candidates; the LLM reads its first ``depth`` passages
    of distinct pages (one forward pass each, nothing generated) and those are re-ordered by
    features score (min-max scaled over them) + ``weight`` × log-likelihood (nats). The rest keep
    the features order below them. A graded likelihood, unlike a yes/no judgement, lets a small
    model help: measured with the bundled 135M model in eval/results/rerank_llm.md, which is also
    where ``depth`` and ``weight`` were chosen."""

    name = "llm"

    def __init__(self, llm, features: Reranker, depth: int = 15, weight: float = 0.05, max_passage_tokens: int = 400,
                 with_section: bool = True):
        self.llm = llm
        self.features = features
        self.depth = depth
        self.weight = weight
        self.max_passage_tokens = max_passage_tokens
        self.with_section = with_section  # the section path in the prompt (eval/rerank_llm.py --no-section)

    @classmethod
    def from_config(cls, cfg, features: Reranker, llm=None) -> "LLMReranker":
        """``features``: the configured features re-ranker (built by the registry, which imports
        this module)."""
        if llm is None:
            if cfg.llm.backend != "transformers":
                raise ConfigError("retrieval.rerank.method llm scores passages with a local model's token "
                                  f"probabilities; llm.backend {cfg.llm.backend!r} has none (use backend: transformers)")
            from pipeline.llm import load_model

            llm = load_model(cfg)
        r = cfg.retrieval.rerank
        return cls(llm, features, depth=r.llm_passages, weight=r.llm_weight)

    def heading(self, hit) -> str:
        """The line above the passage in the prompt (eval/rerank_llm.py measures variants of it)."""
        return f"Passage ({hit.section or getattr(hit, 'title', '') or ''}):" if self.with_section else "Passage:"

    def loglik(self, query: str, hit) -> float:
        """log P(query | passage) under the LLM, in nats."""
        text = hit.text
        n = self.llm.count_tokens(text)
        if n > self.max_passage_tokens:  # a long chunk (chunk size is configurable): its start
            text = text[: len(text) * self.max_passage_tokens // n]
        prompt = _PROMPT.format(head=self.heading(hit), text=text)
        return self.llm.reply_logprob([{"role": "user", "content": prompt}], query.strip())

    def scores(self, query: str, hits: Sequence) -> list[float]:
        if not hits:
            return []
        base = self.features.scores(query, hits)
        order = sorted(range(len(hits)), key=lambda i: (-base[i], i))
        chosen, pages = [], set()
        for i in order:  # the first `depth` of distinct pages (the page cap would drop the others)
            page = (hits[i].doc_id, getattr(hits[i], "page_start", None) or hits[i].chunk_id)
            if page not in pages:
                pages.add(page)
                chosen.append(i)
            if len(chosen) == self.depth:
                break
        low = min(base[i] for i in chosen)
        span = (max(base[i] for i in chosen) - low) or 1.0
        out = [0.0] * len(hits)
        read = {i: (base[i] - low) / span + self.weight * self.loglik(query, hits[i]) for i in chosen}
        floor = min(read.values())
        rest = [i for i in order if i not in read]
        top_rest = max((base[i] for i in rest), default=0.0)
        for i in rest:  # below every passage the LLM read, in the features order
            out[i] = floor - 1.0 - (top_rest - base[i])
        for i, v in read.items():
            out[i] = v
        return out
