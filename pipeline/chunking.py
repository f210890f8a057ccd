"""Token-sized chunks with provenance.

Chunks are measured in tokens of the embedding model's own tokenizer, so none is longer than what
the model reads (MiniLM: 256 word pieces, two of them special). A chunk never crosses a section
boundary and keeps the page (or time) range of the text it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Callable

from ingest.types import Span
from syllabus_common.errors import ConfigError

_SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]
_JOIN = "\n\n"
# Tokens kept free for the section title prefixed to each chunk when it is embedded.
TITLE_RESERVE = 32


@dataclass
class Chunk:
    text: str
    section_path: tuple[str, ...]
    n_tokens: int
    page_start: int | None = None
    page_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    kind: str | None = None  # None: the document's own text; "ocr" or "slide" (see Span.kind)
    para_start: int | None = None  # paragraph numbers, in formats without pages (see Span.para)
    para_end: int | None = None


def check_fits(size: int, model_max_tokens: int, special_tokens: int) -> None:
    limit = model_max_tokens - special_tokens - TITLE_RESERVE
    if size > limit:
        raise ConfigError(
            f"chunking.size ({size}) does not fit the embedding model's input of {model_max_tokens} tokens "
            f"({special_tokens} special, {TITLE_RESERVE} kept for the section title); chunks would be "
            f"truncated. Use chunking.size <= {limit}"
        )


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], size: int, overlap: int):
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self.count_tokens = count_tokens
        self.size = size
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=overlap,
            length_function=count_tokens,
            separators=_SEPARATORS,
            keep_separator="end",
            add_start_index=True,
            strip_whitespace=True,
        )

    def _hard_split(self, text: str) -> list[str]:
        """Last resort for a piece the recursive splitter left too long: halve until it fits."""
        if self.count_tokens(text) <= self.size or len(text) < 2:
            return [text]
        mid = len(text) // 2
        return self._hard_split(text[:mid]) + self._hard_split(text[mid:])

    def chunk(self, spans: list[Span]) -> list[Chunk]:
        chunks: list[Chunk] = []
        # A chunk holds one kind of text, so OCR'd pages and slides stay marked as such.
        for (path, kind), group in groupby(spans, key=lambda s: (s.section_path, s.kind)):
            group = [s for s in group if s.text.strip()]
            if not group:
                continue
            # Concatenate the section's spans, remembering where each one starts.
            starts, parts, pos = [], [], 0
            for span in group:
                starts.append(pos)
                parts.append(span.text)
                pos += len(span.text) + len(_JOIN)
            text = _JOIN.join(parts)
            for doc in self._splitter.create_documents([text]):
                begin = doc.metadata["start_index"]
                if begin < 0:  # not found verbatim (whitespace stripped); locate loosely
                    begin = max(0, text.find(doc.page_content[:40]))
                end = begin + len(doc.page_content)
                covered = [s for s, st in zip(group, starts) if st < end and st + len(s.text) > begin] or group[:1]
                for piece in self._hard_split(doc.page_content):
                    chunks.append(_located(piece, path, covered, self.count_tokens(piece), kind))
        return chunks


def _located(text: str, path: tuple[str, ...], covered: list[Span], n_tokens: int, kind: str | None = None) -> Chunk:
    pages = [s.page for s in covered if s.page is not None]
    t0 = [s.t_start for s in covered if s.t_start is not None]
    t1 = [s.t_end for s in covered if s.t_end is not None]
    paras = [s.para for s in covered if s.para is not None]
    return Chunk(
        text=text,
        section_path=path,
        n_tokens=n_tokens,
        page_start=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
        t_start=min(t0) if t0 else None,
        t_end=max(t1) if t1 else None,
        kind=kind,
        para_start=min(paras) if paras else None,
        para_end=max(paras) if paras else None,
    )
