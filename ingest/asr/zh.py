"""Chinese script variants with OpenCC: Whisper writes Simplified or Traditional as it pleases;
Taiwanese users want Traditional with Taiwanese phrasing (``tw``: 软件 → 軟體, 内存 → 記憶體)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from ingest.asr.base import Segment, Word

# variant → OpenCC configuration. s2twp = Simplified → Traditional (Taiwan) with phrase conversion;
# it leaves text that is already Traditional as it is.
VARIANTS = {"none": None, "tw": "s2twp", "hk": "s2hk", "cn": "t2s"}
CHINESE = ("zh", "yue")


@lru_cache(maxsize=4)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def convert_text(text: str, variant: str) -> str:
    if variant not in VARIANTS:
        from syllabus_common.errors import ConfigError

        raise ConfigError(f"unknown Chinese variant {variant!r}; valid: {', '.join(VARIANTS)}")
    config = VARIANTS[variant]
    return text if config is None else _converter(config).convert(text)


def apply_variant(segments: list[Segment], language: str | None, variant: str) -> list[Segment]:
    """Convert the text (and words) of Chinese transcripts; other languages pass through unchanged."""
    if variant == "none" or language not in CHINESE:
        convert_text("", variant)  # still reject an unknown variant
        return segments
    out = []
    for s in segments:
        words = None if s.words is None else [Word(w.start, w.end, convert_text(w.word, variant), w.probability)
                                               for w in s.words]
        out.append(replace(s, text=convert_text(s.text, variant), words=words))
    return out
