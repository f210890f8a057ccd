"""Fitting text into a model's context window, counted in the model's own tokens.

One set of functions serves ``ask`` (passages into the answer prompt) and ``summarize`` (book text
into map chunks, summaries into merge groups). The guarantee both rely on: the prompt that is sent,
counted with the model's tokenizer and chat template, plus the tokens reserved for the answer, never
exceeds the context window. Sums of per-piece counts are only estimates (tokens can merge across a
join), so every packed prompt is counted again whole and shrunk until it fits.
"""

from __future__ import annotations

from typing import Callable, Sequence

from syllabus_common.errors import SyllabusError

Counter = Callable[[str], int]
_SEPARATORS = ("\n\n", "\n", ". ", "。", "; ", ", ", " ")


class DoesNotFit(SyllabusError):
    """Even the smallest prompt (no passages, no text) is larger than the context window allows."""


def truncate_to_tokens(text: str, limit: int, count: Counter) -> str:
    """The longest prefix of ``text`` with at most ``limit`` tokens, cut at a space when one is near."""
    if limit <= 0 or not text:
        return ""
    if count(text) <= limit:
        return text
    lo, hi = 0, len(text)  # invariant: text[:lo] fits, text[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid
    cut = text.rfind(" ", 0, lo)
    return text[:cut] if cut > lo * 0.8 else text[:lo]


def split_to_fit(text: str, limit: int, count: Counter) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``limit`` tokens each, at the coarsest boundary
    that works (paragraph, line, sentence, clause, word, then characters); small neighbours are merged
    back together up to the limit. Nothing is dropped: the pieces joined cover the text. (A single
    character costing more than ``limit`` tokens stays a piece of its own; callers use limits of
    dozens of tokens.)"""
    if limit < 1:
        raise ValueError("limit must be at least one token")
    text = text.strip()
    if not text:
        return []
    if count(text) <= limit:
        return [text]
    atoms = _atoms(text, limit, count, 0)
    pieces: list[str] = []
    current = ""
    for atom in atoms:
        candidate = current + atom if current else atom
        if current and count(candidate.strip()) > limit:
            pieces.append(current.strip())
            current = atom
        else:
            current = candidate
    if current.strip():
        pieces.append(current.strip())
    return [p for p in pieces if p]


def _atoms(text: str, limit: int, count: Counter, level: int) -> list[str]:
    """Pieces that each fit, separators kept at their ends so joining restores the text."""
    if count(text) <= limit or len(text) == 1:  # one character is as small as text gets
        return [text]
    if level >= len(_SEPARATORS):
        # No separator left (a long run without spaces): halve until it fits.
        mid = len(text) // 2
        return _atoms(text[:mid], limit, count, level) + _atoms(text[mid:], limit, count, level)
    sep = _SEPARATORS[level]
    parts = text.split(sep)
    if len(parts) == 1:
        return _atoms(text, limit, count, level + 1)
    out: list[str] = []
    for i, part in enumerate(parts):
        piece = part + (sep if i < len(parts) - 1 else "")
        if piece:
            out.extend(_atoms(piece, limit, count, level + 1) if count(piece) > limit else [piece])
    return out


def group_to_fit(items: Sequence[str], limit: int, count: Counter, sep: str = "\n\n") -> list[list[int]]:
    """Consecutive groups of item indices whose joined text has at most ``limit`` tokens.

    Raises ValueError when one item alone is over the limit (callers split items first)."""
    groups: list[list[int]] = []
    current: list[int] = []
    for i, item in enumerate(items):
        if count(item) > limit:
            raise ValueError(f"item {i} has {count(item)} tokens, over the limit of {limit}")
        if current and count(sep.join([items[j] for j in current] + [item])) > limit:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def fit_prompt(
    build: Callable[[list[str]], list[dict]],
    items: Sequence[str],
    count_chat: Callable[[list[dict]], int],
    count: Counter,
    context: int,
    reserve: int,
    cap: int = 0,
    min_tail: int = 32,
) -> tuple[list[dict], list[str]]:
    """The most of ``items`` (in order, the last one perhaps trimmed) that ``build`` turns into messages
    fitting ``context`` with ``reserve`` tokens left for the answer; ``cap`` > 0 also bounds the items'
    own tokens. Returns the messages and the items as used (trimmed text included).

    Raises :class:`DoesNotFit` when even ``build([])`` leaves no room for the answer."""
    overhead = count_chat(build([]))
    if overhead + reserve > context:
        raise DoesNotFit(
            f"the prompt needs {overhead} tokens and the answer {reserve}, over the model's context of "
            f"{context}; shorten the question, lower max_new_tokens or raise llm.context"
        )
    room = context - reserve - overhead
    if cap > 0:
        room = min(room, cap)
    chosen: list[str] = []
    used = 0
    for item in items:
        need = count(item) + 2  # + a separator's worth
        if used + need <= room:
            chosen.append(item)
            used += need
            continue
        left = room - used - 2
        if left >= min_tail:
            trimmed = truncate_to_tokens(item, left, count)
            if trimmed:
                chosen.append(trimmed)
        break
    # The sum above is an estimate; count the real prompt and shrink until it fits.
    while True:
        messages = build(chosen)
        if count_chat(messages) + reserve <= context:
            return messages, chosen
        last = chosen.pop()
        over = count_chat(messages) + reserve - context
        shorter = truncate_to_tokens(last, count(last) - over - 1, count)
        if shorter and len(shorter) < len(last) and count(shorter) >= min_tail:
            chosen.append(shorter)
