"""Sentences of source text and of generated text, and the terms two texts are compared by.

A leaf of the trust pipeline (:mod:`pipeline.evidence`, :mod:`pipeline.verify`,
:mod:`pipeline.keypoints`): no model, no I/O.

- :func:`split` cuts text into sentences with their character offsets: English and Chinese end
  punctuation, PDF line wraps joined (hyphenation undone), a code line kept whole as one unit, a
  bare page number or running head dropped, a short unpunctuated line kept as a *heading*.
- :func:`terms` gives the comparable words of a text: lower-cased, lightly stemmed, stop words out;
  Chinese as character bigrams, identifiers (``help.search``, ``na.rm``, ``7B``) whole.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
# End of a sentence: . ! ? (then space and a capital, digit, quote or bracket), or Chinese 。！？；
_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[`A-Z0-9\u3400-\u9fff])|(?<=[。！？；])[」』”’）]*\s*")
_ABBREV = {"e.g", "i.e", "etc", "vs", "cf", "fig", "eq", "p", "pp", "dr", "mr", "ms", "no", "al", "approx", "sec",
           "ch", "vol", "ed", "resp", "st", "e", "i", "viz", "ca", "min", "max", "cor", "op", "cit"}
_PAGE_NUMBER = re.compile(r"^\s*(?:\d{1,4}|[ivxlcdm]{1,7}|page \d+|- ?\d+ ?-)\s*$", re.IGNORECASE)
_RUNNING_HEAD = re.compile(r"^\s*(?:chapter \d+:.{0,80}\s\d{1,4}|\d{1,4}\s+an introduction to r)\s*$", re.IGNORECASE)
_CODE_START = re.compile(r"^\s*(?:[>$+#]\s|>>>|\.\.\.\s|\$ |%|//)")
_CODE_MARKS = re.compile(r"<-|->|==|!=|:=|\{|\}|;\s*$|\w\(.*\)\s*$|\w\[.*\]|^\s*\w[\w.]*\s*=\s*\S")
_MAX_CHARS = 600  # a longer "sentence" (a list flattened by extraction) is cut at ; or ,


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # character offsets in the text it came from
    end: int
    kind: str = "prose"  # "prose" | "code" | "heading"


def has_han(text: str) -> bool:
    return bool(_HAN_RE.search(text))


def is_code_line(line: str) -> bool:
    s = line.strip()
    if not s or has_han(s):
        return False
    if _CODE_START.match(line):
        return True
    words = s.split()
    if s.endswith((".", "?", "!", ":")) and " " in s and (not s.endswith(").") or len(words) >= 5):
        return False  # prose that mentions code
    symbols = sum(c in "(){}[]<>=$#;~^&|\"'" for c in s)
    return bool(_CODE_MARKS.search(s)) and (symbols / len(s) > 0.05 or len(words) <= 4)


_NUMBERED = re.compile(r"^(?:\d+|[A-Z])(?:\.\d+)+\s+\S|^\d+\s+[A-Z]")
_LEADER = re.compile(r"(?:\.\s?){4,}")  # table of contents: "Title . . . . . 12"


def _is_heading(line: str) -> bool:
    s = line.strip()
    if _NUMBERED.match(s) and len(s) <= 90 and not re.search(r"[.!?:;,]$", s):
        return True
    if has_han(s):
        return len(s) <= 20 and not re.search(r"[。！？；，,]$", s)
    words = s.split()
    return 1 <= len(words) <= 9 and not re.search(r"[.!?:;,]$", s) and (s[0].isupper() or s[0].isdigit())


def _blocks(text: str):
    """(kind, start, end) of code lines, headings and prose paragraphs (lines joined)."""
    pos = 0
    para: list[tuple[int, int]] = []
    out = []

    def flush():
        if para:
            out.append(("prose", para[0][0], para[-1][1]))
            para.clear()

    lines = text.split("\n")
    for i, line in enumerate(lines):
        start, end = pos, pos + len(line)
        pos = end + 1
        s = line.strip()
        if _LEADER.search(s):  # "Title . . . . 12" (contents, index): keep the title
            s = _LEADER.split(s)[0].strip()
            line = s
            start, end = start, start + len(s)
            if not s:
                flush()
                continue
            flush()
            out.append(("heading" if _is_heading(s) else "prose", start, end))
            continue
        if not s or _PAGE_NUMBER.match(s) or _RUNNING_HEAD.match(s):
            flush()
            continue
        if is_code_line(line):
            flush()
            out.append(("code", start, end))
            continue
        alone = (i == 0 or not lines[i - 1].strip()) and (i + 1 >= len(lines) or not lines[i + 1].strip())
        if _is_heading(line) and (alone or not para or _NUMBERED.match(s)) and not (i + 1 < len(lines) and lines[i + 1][:1].islower()):
            flush()
            out.append(("heading", start, end))
            continue
        para.append((start, end))
    flush()
    return out


def _join_lines(chunk: str) -> tuple[str, list[int]]:
    """The paragraph on one line (hyphenated wraps undone), with each output char's source offset."""
    out: list[str] = []
    where: list[int] = []
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == "\n":
            prev = out[-1] if out else ""
            if prev == "-" and len(out) > 1 and out[-2].isalpha() and chunk[i + 1 : i + 2].islower():
                out.pop()
                where.pop()  # "giga-\nbytes" → "gigabytes"
            elif not (has_han(prev) and has_han(chunk[i + 1 : i + 2])) and prev != " ":
                out.append(" ")
                where.append(i)
            i += 1
            continue
        out.append(c)
        where.append(i)
        i += 1
    return "".join(out), where


def _cut_long(text: str) -> list[tuple[int, int]]:
    if len(text) <= _MAX_CHARS:
        return [(0, len(text))]
    pieces, start = [], 0
    for m in re.finditer(r"[;；]\s+|,\s+", text):
        if m.end() - start >= _MAX_CHARS // 2:
            pieces.append((start, m.end()))
            start = m.end()
    pieces.append((start, len(text)))
    return pieces


def _split_prose(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _END.finditer(text):
        before = text[start : m.start()].rstrip("\"'”’)]")
        last = re.split(r"\s", before)[-1].rstrip(".").lower() if before else ""
        if before.endswith(".") and (last in _ABBREV or re.fullmatch(r"[a-z]", last)):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


# A blank line inside a sentence (transcript segments, a page break): unterminated line, lower-case next.
_INNER_BREAK = re.compile(r"(?<=[^.!?:。！？\s])[ \t]*\n[ \t]*\n(?=[ \t]*[a-z])")


def split(text: str) -> list[Sentence]:
    """Sentences in reading order; ``text[s.start:s.end]`` is the sentence's source (with line breaks)."""
    out: list[Sentence] = []
    source = text
    text = _INNER_BREAK.sub(lambda m: "\n" + " " * (len(m.group(0)) - 1), text)  # same length: offsets hold
    for kind, start, end in _blocks(text):
        if kind != "prose":
            out.append(Sentence(source[start:end].strip(), start, end, kind))
            continue
        joined, where = _join_lines(text[start:end])
        for a, b in _split_prose(joined):
            for c, d in _cut_long(joined[a:b]):
                piece = joined[a + c : a + d]
                stripped = piece.strip()
                if len(stripped) < 2:
                    continue
                lead = len(piece) - len(piece.lstrip())
                s0 = start + where[a + c + lead]
                s1 = start + where[min(a + c + lead + len(stripped), len(where)) - 1] + 1
                out.append(Sentence(stripped, s0, s1, "prose"))
    return out


# ----- terms
_STOP = set("""a an the and or but if then else of to in on at by for with from as into onto about over under is are was
were be been being am do does did done have has had having it its this that these those there here which who whom whose
what when where why how can could may might must shall should will would not no nor so than too very just also only
such each any all some more most other same both either neither own i you he she we they me him her us them my your
his our their one's s t don doesn isn aren wasn weren you're it's let lets use used using get gets make makes need
needs tell way ways want like kind""".split())
_TOKEN = re.compile(rf"[A-Za-z_][\w]*(?:[.:$@][A-Za-z_]\w*)*(?:\(\))?|\d+(?:[.,]\d+)*[A-Za-z]*|[{_HAN}]+|\?\?|%[a-z%]+%")


def stem(word: str) -> str:
    """A light English stemmer: plurals, -ing, -ed, -ly, -ation; enough to match word forms."""
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    for suffix, repl in (("ational", "ate"), ("ization", "ize"), ("ations", "ate"), ("ation", "ate"), ("nesses", ""),
                         ("iveness", "ive"), ("ments", ""), ("ment", ""), ("ies", "y"), ("ied", "y"), ("sses", "ss"),
                         ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)] + repl
            break
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]  # "stopp" → "stop"
    return w.rstrip("e") if len(w) > 4 else w


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text))  # ligatures (ﬁ), full-width digits


def term_list(text: str) -> list[str]:
    """Comparable terms in order, repeats kept: stems of content words, identifiers whole, Chinese
    character bigrams."""
    out: list[str] = []
    for tok in tokens(text):
        if has_han(tok):
            out += [tok[i : i + 2] for i in range(max(1, len(tok) - 1))]
        elif re.search(r"[.:$@_()]|\d", tok) and len(tok) > 1:
            out.append(tok.lower().rstrip("."))
        elif tok.lower() not in _STOP and len(tok) > 1:
            out.append(stem(tok))
    return out


def terms(text: str) -> set[str]:
    return set(term_list(text))


def is_identifier(tok: str) -> bool:
    """A technical term written as code or a name: help.search, na.rm, LoRA, QLoRA, fp16, 7B, ??"""
    if tok in ("??",) or tok.endswith("()") or re.search(r"[._$@]\w", tok):
        return True
    if re.fullmatch(r"\d+(?:\.\d+)?[A-Za-z]+", tok):
        return False  # a quantity with its unit ("16GB", "7B") is a number claim, not a name
    inner_caps = any(c.isupper() for c in tok[1:])
    return (inner_caps and any(c.islower() for c in tok)) or (tok.isupper() and len(tok) >= 2) or (
        bool(re.search(r"[A-Za-z]", tok)) and bool(re.search(r"\d", tok)))
