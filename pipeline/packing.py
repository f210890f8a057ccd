"""Fitting text into a model's context window, counted in the model's own tokens.

``ask`` packs passages into the answer prompt with :func:`fit_prompt`. The guarantee it relies on:
the prompt that is sent, counted with the model's tokenizer and chat template, plus the tokens
reserved for the answer, never exceeds the context window. Sums of per-piece counts are only estimates (tokens can merge across a
join), so every packed prompt is counted again whole and shrunk until it fits.
"""

from __future__ import annotations

from typing import Callable, Sequence

from syllabus_common.errors import SyllabusError

Counter = Callable[[str], int]


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
