"""The knowledge base: SQLite catalog, FAISS dense index, bm25s lexical index."""

from pipeline.kb.store import KnowledgeBase, IngestOutcome

__all__ = ["KnowledgeBase", "IngestOutcome"]
