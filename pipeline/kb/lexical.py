"""BM25 lexical index (bm25s), saved as .npy and JSON files — never pickle."""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.kb.tokens import TOKENIZER_VERSION, code_tokens

log = logging.getLogger(__name__)

# Words are runs of letters/digits; CJK text has no spaces, so it is indexed as character bigrams.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")


def _bm25s(query_only: bool = False):
    import importlib
    import logging
    import sys

    if query_only and "bm25s" not in sys.modules:
        # bm25s imports numba and scipy.sparse at import (0.6 s) to speed up indexing; scoring a query
        # needs neither, so a fresh search process hides them while bm25s loads (its numpy paths).
        hidden = [m for m in ("numba", "scipy.sparse") if m not in sys.modules]
        sys.modules.update(dict.fromkeys(hidden))
        try:
            importlib.import_module("bm25s")
        finally:
            for m in hidden:
                sys.modules.pop(m, None)
    import bm25s

    # bm25s pins its logger to DEBUG at import; let it follow ours (WARNING, DEBUG with --verbose).
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


@lru_cache(maxsize=4)
def _stemmer(name: str):
    if name == "none":
        return None
    import Stemmer

    return Stemmer.Stemmer(name)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, stemmer: str = "english", code: bool = True) -> list[str]:
    """Lower-cased words without English stop words, stemmed; CJK runs as overlapping bigrams; then
    the code-like tokens (``read.table``, ``::``, ``--vanilla``, ``lm()``) kept whole."""
    stop = _stopwords()
    lowered = text.lower()
    if not _CJK.search(lowered):  # the common case, three times faster than word by word
        tokens = [w for w in _WORD.findall(lowered) if w not in stop]
    else:
        tokens = _cjk_tokens(lowered, stop)
    st = _stemmer(stemmer)
    words = st.stemWords(tokens) if st is not None and tokens else tokens
    return words + code_tokens(text) if code else words


def _cjk_tokens(lowered: str, stop: frozenset[str]) -> list[str]:
    """Words of a text with CJK runs; each run becomes its overlapping character bigrams."""
    tokens: list[str] = []
    for match in _WORD.finditer(lowered):
        word = match.group()
        cjk = _CJK.findall(word)
        if cjk:
            for run in cjk:
                tokens.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
            word = _CJK.sub(" ", word).strip()
            if not word:
                continue
            tokens.extend(w for w in word.split() if w not in stop)
            continue
        if word not in stop:
            tokens.append(word)
    return tokens


class LexicalIndex:
    """BM25 over chunk texts; ``ids`` maps row positions back to chunk ids."""

    META = "syllabus.json"

    def __init__(self, retriever, ids: np.ndarray, stemmer: str, generation: int, code: bool = True):
        self.retriever = retriever
        self.ids = ids
        self.stemmer = stemmer
        self.generation = generation
        self.code = code  # code-like tokens indexed (False: words only, as before tokenizer v2)

    @classmethod
    def build(cls, ids: list[int], texts: list[str], stemmer: str, generation: int,
              code: bool = True) -> "LexicalIndex":
        bm25s = _bm25s()
        corpus = [tokenize(t, stemmer, code) or [""] for t in texts]
        retriever = bm25s.BM25()
        if corpus:
            retriever.index(corpus, show_progress=False)
        return cls(retriever if corpus else None, np.asarray(ids, dtype=np.int64), stemmer, generation, code)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.retriever is not None:
            self.retriever.save(str(folder), allow_pickle=False)
        np.save(folder / "ids.npy", self.ids, allow_pickle=False)
        (folder / self.META).write_text(json.dumps({
            "generation": self.generation, "stemmer": self.stemmer, "count": int(len(self.ids)),
            "tokenizer": TOKENIZER_VERSION if self.code else 1,
        }))

    @staticmethod
    def generation_of(folder: Path) -> int | None:
        """The catalog generation the index was built from; None when missing, unreadable or built by
        another tokenizer version (its tokens would not match the queries': it must be rebuilt)."""
        try:
            meta = json.loads((folder / LexicalIndex.META).read_text())
            if meta.get("tokenizer", 1) != TOKENIZER_VERSION:
                log.info("BM25 index in %s was built by tokenizer v%s (now v%s); rebuilding it",
                         folder, meta.get("tokenizer", 1), TOKENIZER_VERSION)
                return None
            return int(meta["generation"])
        except (OSError, ValueError, KeyError):
            return None

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        bm25s = _bm25s(query_only=True)
        meta = json.loads((folder / cls.META).read_text())
        ids = np.load(folder / "ids.npy", allow_pickle=False)
        retriever = bm25s.BM25.load(str(folder), allow_pickle=False) if len(ids) else None
        return cls(retriever, ids, meta["stemmer"], int(meta["generation"]))

    def search(self, query: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``n`` (chunk id, BM25 score) with a positive score; ``allowed`` masks chunk rows."""
        if self.retriever is None or n <= 0:
            return []
        tokens = tokenize(query, self.stemmer, self.code)
        if not tokens:
            return []
        scores = self.retriever.get_scores(tokens)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if scores[i] > 0]
