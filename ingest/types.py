"""What ingest produces: documents made of located text, whatever the source format."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Page:
    number: int  # physical page, 1-based
    label: str  # printed page label ("iv", "12"); the physical number when the PDF defines none
    text: str
    has_text_layer: bool  # False: no extractable text (a scan or a picture), reported, not dropped
    ocr: bool = False  # the text was recognised from the page's image


@dataclass
class Section:
    """A node of the document's outline, with the physical page range (inclusive) or, for a
    transcript, the time range in seconds that it covers."""

    title: str
    level: int  # 1 = chapter
    path: tuple[str, ...]  # titles from the top level down to this section
    page_start: int | None = None
    page_end: int | None = None
    t_start: float | None = None
    t_end: float | None = None


@dataclass
class Span:
    """A piece of text at one place in a document: part of a page within one section."""

    text: str
    section_path: tuple[str, ...]
    page: int | None = None
    t_start: float | None = None  # seconds, for transcripts
    t_end: float | None = None
    kind: str | None = None  # None: the document's own text (text layer, transcript); "ocr"; "slide"
    para: int | None = None  # formats without pages (DOCX, Markdown, HTML, text): paragraph number, 1-based


@dataclass
class ExtractedDocument:
    path: str
    kind: str  # "pdf" | "media" | "epub" | "mobi" | "fb2" | "xps" | "cbz" | "pptx" | "docx" | "md" | "html" | "txt"
    title: str
    author: str
    pages: list[Page]
    sections: list[Section]
    spans: list[Span]
    warnings: list[str] = field(default_factory=list)
    language: str | None = None
    outline_source: str = "toc"  # "toc" | "headings" (by font size) | "windows" (none) | "time windows"

    @property
    def image_only_pages(self) -> list[int]:
        return [p.number for p in self.pages if not p.has_text_layer]
