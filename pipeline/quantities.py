"""Numbers with their units, as a claim and as evidence, whatever way they are written.

``16–24 GB``, ``16 to 24 gigabytes``, ``sixteen to twenty-four GB``, ``16 到 24 GB`` and
``十六至二十四 GB`` are one quantity: 16..24 in unit ``gb``. ``1,000`` is ``1000``, ``50 percent``
is ``50 %``, ``7B`` and ``7 billion`` are 7e9. :func:`normalize` rewrites a text's number words and
Chinese numerals as digits; :func:`quantities` reads the (ranges of) numbers and their units.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
         "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000}
_WORD = "|".join(sorted([*_ONES, *_TENS, *_SCALES], key=len, reverse=True))
_WORD_RUN = re.compile(rf"\b(?:{_WORD})(?:(?:[\s-]+(?:and[\s-]+)?)(?:{_WORD}))*\b", re.IGNORECASE)

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "兩": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "萬": 10_000, "万": 10_000, "億": 100_000_000, "亿": 100_000_000}
_ZH_RUN = re.compile(f"[{''.join(_ZH_DIGITS)}{''.join(_ZH_UNITS)}]+")

# unit surface form (lower case) → canonical unit
UNITS = {
    "gb": "gb", "gigabyte": "gb", "gigabytes": "gb", "gbs": "gb", "g": "gb",
    "gib": "gib", "mb": "mb", "megabyte": "mb", "megabytes": "mb", "mib": "mib", "kb": "kb", "kilobyte": "kb",
    "kilobytes": "kb", "kib": "kib", "tb": "tb", "terabyte": "tb", "terabytes": "tb", "tib": "tib",
    "byte": "byte", "bytes": "byte", "位元組": "byte", "字節": "byte", "字元組": "byte",
    "bit": "bit", "bits": "bit", "位元": "bit",
    "%": "%", "percent": "%", "per cent": "%", "pct": "%",
    "s": "s", "sec": "s", "second": "s", "seconds": "s", "秒": "s", "ms": "ms", "millisecond": "ms", "milliseconds": "ms",
    "min": "min", "minute": "min", "minutes": "min", "分鐘": "min", "h": "h", "hour": "h", "hours": "h", "小時": "h",
    "mhz": "mhz", "ghz": "ghz", "x": "x", "times": "x", "倍": "x",
    "page": "page", "pages": "page", "頁": "page", "chapter": "chapter", "chapters": "chapter", "章": "chapter",
}
_SCALE_SUFFIX = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "billion": 1e9, "t": 1e12,
                 "trillion": 1e12, "萬": 1e4, "億": 1e8}
_NUM = r"\d+(?:\.\d+)?"
_UNIT_ALT = "|".join(sorted((re.escape(u) for u in [*UNITS, *_SCALE_SUFFIX]), key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?<![A-Za-z0-9_.])(?:between\s+)?(?P<lo>{_NUM})(?![.\d])(?P<lo_unit>\s?(?:{_UNIT_ALT})(?![A-Za-z]))?"
    rf"(?:\s*(?:–|—|-|~|～|to|and|到|至)\s*(?P<hi>{_NUM})(?![.\d]))?"
    rf"(?P<unit>\s?(?:{_UNIT_ALT})(?![A-Za-z]))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    lo: float
    hi: float
    unit: str | None  # canonical unit, None for a bare number
    text: str  # as written (after normalization)

    @property
    def is_range(self) -> bool:
        return self.lo != self.hi


def _words_value(words: str) -> int | None:
    total, current = 0, 0
    for w in re.split(r"[\s-]+", words.lower()):
        if w == "and" or not w:
            continue
        if w in _ONES:
            current += _ONES[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _SCALES:
            total += max(current, 1) * _SCALES[w]
            current = 0
    return total + current


def _zh_value(run: str) -> int | None:
    if all(c in _ZH_DIGITS for c in run):  # 二〇二四 written digit by digit
        return int("".join(str(_ZH_DIGITS[c]) for c in run)) if len(run) > 1 else _ZH_DIGITS[run]
    total, section, digit = 0, 0, None
    for c in run:
        if c in _ZH_DIGITS:
            digit = _ZH_DIGITS[c]
        elif c in ("萬", "万", "億", "亿"):
            section = (section + (digit or 0)) * _ZH_UNITS[c]
            total, section, digit = total + section, 0, None
        else:
            section += (1 if digit is None else digit) * _ZH_UNITS[c]
            digit = None
    return total + section + (digit or 0)


def normalize(text: str) -> str:
    """Number words and Chinese numerals as digits, thousands separators out, dashes unified."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"百分之([\d.]+|[零〇一二兩三四五六七八九十百千]+)", r"\1%", text)

    def zh(m: re.Match) -> str:
        run = m.group(0)
        follows = text[m.end() : m.end() + 3]
        if len(run) == 1 and run in "一兩两" and not re.match(r"\s*(?:[%％]|GB|MB|TB|位元|個參數|倍|秒|章|頁)", follows):
            return run  # 一 as an article ("一本書"), not a claim of the number 1
        return str(_zh_value(run))

    text = _ZH_RUN.sub(zh, text)
    text = _WORD_RUN.sub(lambda m: m.group(0) if all(w.lower() in _SCALES for w in re.split(r"[\s-]+", m.group(0)))
                         else str(_words_value(m.group(0))), text)  # "7 billion" stays: a scale, not a number
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return text.replace("％", "%").replace("−", "-").replace("‒", "–")


def _scaled(value: float, unit: str | None) -> tuple[float, str | None]:
    if unit is None:
        return value, None
    if unit in _SCALE_SUFFIX:
        return value * _SCALE_SUFFIX[unit], None
    return value, UNITS.get(unit)


def quantities(text: str) -> list[Quantity]:
    """Every number (or range) in ``text`` with its unit; citation markers [n] are not numbers."""
    text = re.sub(r"\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\]|【\d{1,3}】", " ", normalize(text))
    out = []
    for m in _QUANTITY.finditer(text):
        raw_unit = (m.group("unit") or m.group("lo_unit") or "").strip()
        unit_key = raw_unit if raw_unit in ("B", "M", "K", "T") else raw_unit.lower()  # 7B = 7e9; 7 b(ytes) is rare
        if unit_key in ("b", "m", "t") and raw_unit.islower():
            unit_key = ""  # "5 m" (metres?) or "2 t": not a scale we can trust
        unit_key = unit_key.lower() or None
        (lo, unit), (hi, _) = _scaled(float(m.group("lo")), unit_key), _scaled(float(m.group("hi") or m.group("lo")), unit_key)
        if m.group("hi") and " and " in m.group(0) and not m.group(0).lower().startswith("between"):
            out += [Quantity(lo, lo, unit, m.group("lo")), Quantity(hi, hi, unit, m.group("hi"))]  # "2 and 3 GB"
        else:
            out.append(Quantity(lo, hi, unit, m.group(0).strip()))
    return out


def unit_words(unit: str) -> set[str]:
    return {surface for surface, canon in UNITS.items() if canon == unit}


def supports(claim: Quantity, evidence: list[Quantity], evidence_text: str) -> bool:
    """``claim`` appears among ``evidence``: same value or range, and a compatible unit.

    A single number may be one end of a range in the evidence. A unit the evidence leaves off the
    number must at least be named in the evidence text ("a 7B model ... in GB").
    """
    lowered = normalize(evidence_text).lower()
    for q in evidence:
        same = (q.lo, q.hi) == (claim.lo, claim.hi) or (not claim.is_range and claim.lo in (q.lo, q.hi))
        if not same:
            continue
        if claim.unit is None or q.unit == claim.unit:
            return True
        if q.unit is None and any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", lowered) for w in unit_words(claim.unit)):
            return True
    return False


def unsupported(claims: list[Quantity], source: str) -> list[Quantity]:
    """The ``claims`` that ``source`` does not hold (see :func:`supports`)."""
    found = quantities(source)
    return [q for q in claims if not supports(q, found, source)]
