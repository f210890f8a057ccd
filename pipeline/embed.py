"""Sentence embeddings with sentence-transformers; the bundled MiniLM by default, offline."""

from __future__ import annotations

import logging
from functools import cached_property

import numpy as np

from pipeline.config import Config
from syllabus_common.errors import ModelNotAvailable
from syllabus_common.models import enforce_offline, resolve_model_path

log = logging.getLogger(__name__)


def embedding_model_name(cfg: Config) -> str:
    """The configured embedding model, with ``auto`` replaced by the planner's choice."""
    if cfg.embedding.model != "auto":
        return cfg.embedding.model
    from pipeline.planner.plan import resolve_auto

    choice = resolve_auto("embedding", offline=cfg.offline)
    log.info("embedding model auto: %s", choice["explanation"])
    return choice["config_value"]


class Embedder:
    """Loads lazily; ``count_tokens`` and ``max_tokens`` use the model's own tokenizer."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 16, offline: bool = True,
                 precision: str = "auto"):
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.offline = offline
        self.precision = precision

    @classmethod
    def from_config(cls, cfg: Config) -> "Embedder":
        e = cfg.embedding
        return cls(embedding_model_name(cfg), cfg.resolved_device(), e.batch_size, cfg.offline, e.precision)

    @cached_property
    def compute_dtype(self):
        """Autocast dtype, or None for fp32. ``auto``: bf16 on CPUs with native bf16 (AVX512-BF16/AMX),
        fp16 on CUDA; both keep cosine similarity to the fp32 vectors above 0.9999 for MiniLM."""
        import torch

        if self.precision == "fp32":
            return None
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "fp16":
            return torch.float16
        if self.device.startswith("cuda"):
            return torch.float16
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None

    @cached_property
    def model(self):
        enforce_offline(self.offline)
        path = resolve_model_path(self.name, "embedding", self.offline)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            model = SentenceTransformer(path, device=self.device, local_files_only=self.offline)
        except Exception as exc:
            raise ModelNotAvailable(f"cannot load embedding model {self.name!r} from {path}: {exc}") from None
        log.debug("embedding model %s on %s, max_seq_length=%s", path, self.device, model.max_seq_length)
        return model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads, special tokens included; text past this is cut by the model."""
        return int(self.model.max_seq_length)

    @cached_property
    def _tokenizer(self):
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without the special tokens the model adds ([CLS], [SEP])."""
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    @property
    def special_tokens(self) -> int:
        return len(self._tokenizer("", add_special_tokens=True)["input_ids"])

    def encode(self, texts: list[str], progress=None, batch_size: int | None = None) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dim); ``progress(n)`` after each batch of
        ``batch_size`` (default: the configured one)."""
        import contextlib

        import torch

        dtype = self.compute_dtype
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        cast = torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

        def batch(part: list[str]) -> np.ndarray:
            with torch.inference_mode(), cast:
                return self.model.encode(part, batch_size=len(part), normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)

        return encode_sorted(texts, batch_size or self.batch_size, self.dim, batch, progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def encode_sorted(texts: list[str], batch_size: int, dim: int, encode_batch, progress=None) -> np.ndarray:
    """``encode_batch`` over ``texts`` longest first, so each batch pads to similar lengths; rows come
    back in the input order, float32 (len(texts), dim). ``progress(n)`` after each batch."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = np.asarray(encode_batch([texts[i] for i in idx]), dtype=np.float32)
        if progress is not None:
            progress(len(idx))
    return out
