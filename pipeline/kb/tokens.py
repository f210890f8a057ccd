"""Code-aware tokens for lexical search: identifiers and operators kept whole next to stemmed words.

Technical books name things with punctuation: ``read.table``, ``base::sum``, ``--vanilla``,
``x[[i]]``, ``lm()``, ``%in%``. A word tokenizer splits them into common words ("read", "table") and
drops the operators, so the most specific words of a question are lost. :func:`code_tokens` adds
them back as extra tokens; they contain punctuation, so they never collide with a stemmed word.
"""

from __future__ import annotations

import re

# Bump when the tokens an index holds change: an index built with another version is rebuilt.
TOKENIZER_VERSION = 2

# A dotted/colon-joined name (read.table, base::sum, pkg:::f, obj$field, x@slot) or a plain name.
_NAME = r"[A-Za-z][A-Za-z0-9_]*(?:(?:\.|::?:?|\$|@)[A-Za-z0-9_]+)*"
_PATTERNS = [
    ("flag", re.compile(r"(?<![\w-])--?[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:=)?")),  # --vanilla, -e
    ("call", re.compile(rf"(?<![\w.])({_NAME})\s?\(")),  # lm(  →  lm()
    ("compound", re.compile(rf"(?<![\w.])({_NAME})")),  # read.table, base::sum
    ("operator", re.compile(r"%[^%\s]{1,8}%|:::|::|<<-|->>|<-|->|\|>|\[\[|\]\]|==|!=|<=|>=|&&|\|\||~")),
]


def code_tokens(text: str) -> list[str]:
    """Identifiers with inner punctuation, command-line flags, calls (``name()``) and operators.

    Plain words are left to the word tokenizer; only names with a dot, colon, ``$`` or ``@`` inside
    and names written as calls come out here. Lower-cased, in order of appearance.
    """
    out: list[str] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if kind == "flag":
                tok = m.group().rstrip("=")
                if tok.startswith("--") or len(tok) <= 3:  # "-e" yes; "-well-known" prose hyphen no
                    out.append(tok.lower())
            elif kind == "call":
                name = m.group(1)
                out.append(name.lower() + "()")  # the name itself comes from "compound"
            elif kind == "compound":
                name = m.group(1)
                if _is_compound(name):
                    out.append(name.lower())
            else:
                out.append(m.group())
    return out


def _is_compound(name: str) -> bool:
    """A name joined by punctuation (not a sentence's full stop followed by a capital)."""
    if not any(c in name for c in ".:$@"):
        return False
    parts = re.split(r"[.:$@]+", name)
    return all(parts) and not (len(parts) == 2 and parts[1][:1].isupper() and "." in name and len(parts[0]) > 3)


def query_code_tokens(text: str) -> set[str]:
    """The code tokens of a question that are specific enough to demand an exact match."""
    return {t for t in code_tokens(text) if len(t) >= 2 and t not in _WEAK}


# Operators so common in prose or formulas that their presence says little.
_WEAK = frozenset({"~", "==", "<=", ">=", "->", "<-"})
