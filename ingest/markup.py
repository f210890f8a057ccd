"""Markdown, HTML and plain text: headings become sections, the text between them their spans.

These formats have no pages; a passage is located by its section path and its paragraph numbers:
body blocks (paragraphs, list items, tables, code blocks) counted from 1 at the top of the file,
headings not counted. The same outline builder serves DOCX (:mod:`ingest.office`), whose headings
are paragraph styles.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from ingest.files import check_file
from ingest.types import ExtractedDocument, Section, Span
from syllabus_common.errors import IngestError

Block = tuple[int | None, str]  # (heading level, text); level None for body text


def read_text(path: Path) -> tuple[str, list[str]]:
    """The file as text (UTF-8, BOM allowed) and a warning when bytes had to be replaced."""
    check_file(path)
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise IngestError(f"{path}: not a text file (binary data)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), ["not valid UTF-8; undecodable bytes replaced"]


def sections_from_blocks(blocks: list[Block]) -> tuple[list[Section], list[Span]]:
    """Headings → a section tree (levels normalised so the top heading used is level 1); body text →
    one span per block, numbered, under the nearest heading above it (text before the first heading
    has an empty path)."""
    levels = sorted({lvl for lvl, text in blocks if lvl is not None and text.strip()})
    rank = {lvl: i + 1 for i, lvl in enumerate(levels)}
    sections: list[Section] = []
    spans: list[Span] = []
    stack: list[str] = []
    for level, text in blocks:
        text = text.strip()
        if not text:
            continue
        if level is None:
            spans.append(Span(text=text, section_path=tuple(stack), para=len(spans) + 1))
            continue
        title = " ".join(text.split())
        depth = rank[level]
        del stack[depth - 1:]
        stack.append(title)
        sections.append(Section(title=title, level=len(stack), path=tuple(stack)))
    return sections, spans


def document(path: Path, kind: str, blocks: list[Block], title: str = "", author: str = "",
             warnings: list[str] | None = None) -> ExtractedDocument:
    sections, spans = sections_from_blocks(blocks)
    if not spans and not sections:
        raise IngestError(f"{path}: no text found")
    if not spans:  # headings only: they are the text
        spans = [Span(text=s.title, section_path=s.path) for s in sections]
    if not title:
        top = [s for s in sections if s.level == 1]
        title = top[0].title if len(top) == 1 else path.stem
    return ExtractedDocument(path=str(path), kind=kind, title=title, author=author, pages=[], sections=sections,
                             spans=spans, warnings=list(warnings or []))


# ----- Markdown and plain text
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_blocks(text: str) -> list[Block]:
    """ATX (``# Title``) and setext (underlined) headings; paragraphs split at blank lines. Code
    fences are body text even when a line in them starts with ``#``."""
    blocks: list[Block] = []
    para: list[str] = []
    fenced = False

    def flush() -> None:
        if para:
            blocks.append((None, "\n".join(para)))
            para.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            para.append(line)
            continue
        if not fenced:
            m = _ATX.match(line)
            if m:
                flush()
                blocks.append((len(m.group(1)), m.group(2)))
                continue
            m = _SETEXT.match(line)
            if m and len(para) == 1 and para[0].strip():
                blocks.append((1 if m.group(1)[0] == "=" else 2, para.pop()))
                continue
            if not line.strip():
                flush()
                continue
        para.append(line)
    flush()
    return blocks


def extract_markdown(path: str | Path, kind: str = "md") -> ExtractedDocument:
    path = Path(path)
    text, warnings = read_text(path)
    return document(path, kind, markdown_blocks(text), warnings=warnings)


# ----- HTML
_SKIP = {"script", "style", "head", "nav", "template", "noscript"}
_BREAK = {"p", "div", "li", "tr", "br", "pre", "blockquote", "section", "article", "table", "ul", "ol", "dd", "dt"}


class _Blocks(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.text: list[str] = []
        self.heading: int | None = None
        self.skip = 0
        self.title: list[str] = []
        self.in_title = False

    def _flush(self, level: int | None) -> None:
        text = " ".join("".join(self.text).split())
        if text:
            self.blocks.append((level, text))
        self.text = []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip += 1
        if tag == "title":
            self.in_title = True
        if re.fullmatch(r"h[1-6]", tag):
            self._flush(None)
            self.heading = int(tag[1])
        elif tag in _BREAK:
            self._flush(self.heading)

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "title":
            self.in_title = False
        if re.fullmatch(r"h[1-6]", tag):
            self._flush(self.heading)
            self.heading = None
        elif tag in _BREAK:
            self._flush(self.heading)

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.text.append(data)


def extract_html(path: str | Path) -> ExtractedDocument:
    path = Path(path)
    text, warnings = read_text(path)
    parser = _Blocks()
    parser.feed(text)
    parser.close()
    parser._flush(parser.heading)
    return document(path, "html", parser.blocks, title=" ".join("".join(parser.title).split()), warnings=warnings)
