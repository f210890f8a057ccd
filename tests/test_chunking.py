"""Chunks are sized in the embedding model's own tokens and keep their provenance."""

from __future__ import annotations

import pytest

from ingest.types import Span
from pipeline.chunking import TITLE_RESERVE, Chunker, check_fits
from syllabus_common.errors import ConfigError


def _spans():
    sentence = "Gradient checkpointing trades compute for memory by recomputing activations. "
    return [
        Span(sentence * 40, ("1 Memory",), page=3),
        Span(sentence * 25, ("1 Memory",), page=4),
        Span("Short closing note on adapters.", ("2 Adapters",), page=4),
        Span(sentence * 10, ("2 Adapters",), page=5),
    ]


@pytest.mark.parametrize("size,overlap", [(64, 8), (128, 16), (200, 32)])
def test_no_chunk_exceeds_size_in_model_tokens(embedder, size, overlap):
    chunks = Chunker(embedder.count_tokens, size, overlap).chunk(_spans())
    assert chunks
    for c in chunks:
        assert c.n_tokens == embedder.count_tokens(c.text) <= size
        # What the model reads (text + special tokens) is never cut off.
        assert c.n_tokens + embedder.special_tokens <= embedder.max_tokens


def test_chunks_keep_pages_and_never_cross_sections(embedder):
    chunks = Chunker(embedder.count_tokens, 100, 10).chunk(_spans())
    memory = [c for c in chunks if c.section_path == ("1 Memory",)]
    adapters = [c for c in chunks if c.section_path == ("2 Adapters",)]
    assert memory and adapters and len(memory) + len(adapters) == len(chunks)
    assert {c.page_start for c in memory} | {c.page_end for c in memory} <= {3, 4}
    assert all(4 <= c.page_start <= c.page_end <= 5 for c in adapters)
    assert any("adapters" in c.text for c in adapters)


def test_chunk_spanning_a_page_break_keeps_both_pages(embedder):
    spans = [Span("End of the paragraph on page nine.", ("S",), page=9),
             Span("It continues on page ten.", ("S",), page=10)]
    [chunk] = Chunker(embedder.count_tokens, 100, 10).chunk(spans)
    assert (chunk.page_start, chunk.page_end) == (9, 10)


def test_overlap_repeats_text_between_neighbours(embedder):
    chunks = Chunker(embedder.count_tokens, 64, 24).chunk([Span(" ".join(f"word{i}" for i in range(400)), ("A",), page=1)])
    assert len(chunks) > 2
    first_words = set(chunks[0].text.split())
    assert first_words & set(chunks[1].text.split())


def test_size_that_would_be_truncated_is_rejected(embedder):
    limit = embedder.max_tokens - embedder.special_tokens - TITLE_RESERVE
    check_fits(limit, embedder.max_tokens, embedder.special_tokens)
    with pytest.raises(ConfigError, match="truncated"):
        check_fits(limit + 1, embedder.max_tokens, embedder.special_tokens)
