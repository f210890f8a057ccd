"""A lecture video's slides beside its transcript: slide chunks, and slide titles in the outline.

The transcript's time windows (``asr.section_seconds``) stay the chapters of a recording. When the
video shows slides, a window's title names the slides shown in it ("05:00–10:00 · LoRA; QLoRA"),
each slide becomes a subsection of the window it appears in, the transcript segments said while it
was shown are filed under it, and its OCR'd text is a span of kind ``slide`` with the slide's own
time range, so a search hit or a citation says "slide, 12:30–14:05".
"""

from __future__ import annotations

import logging
from pathlib import Path

from ingest.types import Section, Span
from syllabus_common.timefmt import clock, span as time_span

log = logging.getLogger(__name__)
MAX_TITLES = 3  # slide titles named in a window's title


def find_lecture_slides(path: Path, cfg, cache_dir: Path | None, duration: float | None = None) -> list:
    """The slides of ``path`` as the config asks ([] when slides are off or there is no picture)."""
    slides_cfg = getattr(cfg, "slides", None)
    if slides_cfg is not None and not slides_cfg.enabled:
        return []
    from ingest.ocr import image_reader
    from ingest.slides import SlideSettings, find_slides

    settings = SlideSettings.from_config(cfg) if slides_cfg is not None else SlideSettings()
    return find_slides(path, settings, image_reader(cfg, cache_dir), duration)


def _heading(slide, taken: set[str]) -> str:
    base = slide.title or f"Slide at {clock(slide.t_start)}"
    heading = base if base not in taken else f"{base} ({clock(slide.t_start)})"
    taken.add(heading)
    return heading


def with_slides(sections: list[Section], spans: list[Span], slides: list, window: float
                ) -> tuple[list[Section], list[Span]]:
    """The outline and spans of a transcript (from :func:`ingest.media_doc.time_sections`) with the
    slides merged in. Without slides, both come back unchanged."""
    if not slides:
        return sections, spans
    windows: dict[int, Section] = {int(s.t_start // window): s for s in sections}
    for slide in slides:  # a window where only slides speak (a silent stretch) still gets a section
        index = int(slide.t_start // window)
        if index not in windows:
            start, end = index * window, min((index + 1) * window, slide.t_end)
            label = time_span(start, end)
            windows[index] = Section(title=label, level=1, path=(label,), t_start=start, t_end=end)
    out_sections: list[Section] = []
    placed: list[tuple[float, int, float, Span]] = []  # (section order, kind order, start, span)
    for index in sorted(windows):
        w = windows[index]
        shown = [s for s in slides if s.t_start < (w.t_end or 0) and s.t_end > (w.t_start or 0)]
        titles = list(dict.fromkeys(s.title for s in shown if s.title))[:MAX_TITLES]
        label = time_span(w.t_start, w.t_end)
        title = f"{label} · {'; '.join(titles)}" if titles else label
        top = Section(title=title, level=1, path=(title,), t_start=w.t_start, t_end=w.t_end)
        out_sections.append(top)
        taken: set[str] = set()
        subs = []
        for slide in shown:
            heading = _heading(slide, taken)
            sub = Section(title=heading, level=2, path=(title, heading), t_start=max(slide.t_start, w.t_start),
                          t_end=min(slide.t_end, w.t_end))
            subs.append((slide, sub))
            out_sections.append(sub)
            if int(slide.t_start // window) == index:
                placed.append((len(out_sections), 0, slide.t_start,
                               Span(text=slide.text, section_path=sub.path, t_start=slide.t_start, t_end=slide.t_end,
                                    kind="slide")))
        for s in spans:
            if int((s.t_start or 0) // window) != index:
                continue
            owner = next(((i, sub) for i, (slide, sub) in enumerate(subs)
                          if slide.t_start <= (s.t_start or 0) < slide.t_end), None)
            order = out_sections.index(owner[1]) + 1 if owner else len(out_sections) - len(subs)
            path = owner[1].path if owner else top.path
            placed.append((order, 1, s.t_start or 0, Span(text=s.text, section_path=path, t_start=s.t_start,
                                                          t_end=s.t_end, kind=s.kind)))
    placed.sort(key=lambda p: (p[0], p[1], p[2]))
    return out_sections, [p[3] for p in placed]


def slides_text(slides: list) -> str:
    """Slides as plain text, one block each: ``[12:30–14:05] Title`` then the slide's text."""
    blocks = []
    for s in slides:
        head = f"[{time_span(s.t_start, s.t_end)}] {s.title}".rstrip()
        body = s.text[len(s.title):].strip() if s.title and s.text.startswith(s.title) else s.text
        blocks.append(f"{head}\n{body}".strip())
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def write_slide_files(path: Path, out_dir: Path, stem: str, cfg, cache_dir: Path | None,
                      duration: float | None = None) -> list[Path]:
    """``<stem>.slides.txt`` and ``<stem>.slides.json`` (start, end, title, text per slide) beside
    the transcript files; none for a recording without slides."""
    import json

    from syllabus_common.atomic import atomic_write_text

    slides = find_lecture_slides(Path(path), cfg, cache_dir, duration)
    if not slides:
        return []
    txt, js = Path(out_dir) / f"{stem}.slides.txt", Path(out_dir) / f"{stem}.slides.json"
    atomic_write_text(txt, slides_text(slides))
    atomic_write_text(js, json.dumps({"file": str(path), "slides": [s.as_dict() for s in slides]},
                                     ensure_ascii=False, indent=1) + "\n")
    return [txt, js]
