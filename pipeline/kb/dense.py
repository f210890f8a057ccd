"""FAISS dense index over unit-length embeddings: exact inner product, or HNSW when large."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class DenseIndex:
    def __init__(self, index, generation: int, kind: str):
        self.index = index
        self.generation = generation
        self.kind = kind  # "flat" | "hnsw"

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, generation: int,
              hnsw_threshold: int, hnsw_m: int, hnsw_ef_search: int) -> "DenseIndex":
        import faiss

        if len(ids) > hnsw_threshold:
            # Inner product on unit vectors = cosine similarity.
            base = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = max(40, 2 * hnsw_m)
            base.hnsw.efSearch = hnsw_ef_search
            kind = "hnsw"
        else:
            base = faiss.IndexFlatIP(dim)
            kind = "flat"
        index = faiss.IndexIDMap2(base)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        return cls(index, generation, kind)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @staticmethod
    def meta_path(path: Path) -> Path:
        return path.with_suffix(".json")

    @classmethod
    def load(cls, path: Path, ef_search: int) -> "DenseIndex":
        import faiss

        meta = json.loads(cls.meta_path(path).read_text())
        index = faiss.read_index(str(path))
        if meta["kind"] == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = ef_search
        return cls(index, int(meta["generation"]), meta["kind"])

    def search(self, query: np.ndarray, n: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        import faiss

        if self.index.ntotal == 0 or n <= 0:
            return []
        params = None
        if allowed_ids is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        n = min(n, self.index.ntotal)
        scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), n, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
