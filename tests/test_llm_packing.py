"""Context packing: whatever the passages, the prompt plus the answer never exceeds the window."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.packing import DoesNotFit, fit_prompt, truncate_to_tokens

WORDS = ["memory", "GPU", "tensor", "7B", "LoRA", "的", "模型", "x", "a-b-c", "supercalifragilistic", "\n", "\n\n", ". "]


def odd_count(text: str) -> int:
    """A tokenizer-like count that is not additive: long words cost more, CJK one per character,
    and a join can change the count (like BPE merging across a boundary)."""
    n = 0
    for word in text.split():
        n += 1 + len(word) // 6 + sum(1 for c in word if "\u4e00" <= c <= "\u9fff")
    return n + text.count("\n\n")


def chat(messages: list[dict]) -> str:
    return "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)


texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=120).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(passages=st.lists(texts, min_size=0, max_size=12), question=texts,
       context=st.integers(min_value=40, max_value=800), reserve=st.integers(min_value=1, max_value=200),
       cap=st.integers(min_value=0, max_value=400))
def test_fit_prompt_never_exceeds_the_window(passages, question, context, reserve, cap):
    def build(chosen):
        return [{"role": "system", "content": "Answer with citations."},
                {"role": "user", "content": "\n\n".join(chosen) + "\n\nQuestion: " + question}]

    def count_chat(messages):
        return odd_count(chat(messages)) + 3

    try:
        messages, used = fit_prompt(build, passages, count_chat, odd_count, context, reserve, cap=cap)
    except DoesNotFit:
        assert count_chat(build([])) + reserve > context  # only when nothing at all fits
        return
    assert count_chat(messages) + reserve <= context
    assert messages == build(used)
    assert len(used) <= len(passages)
    for i, u in enumerate(used):  # in rank order; only the last one may be trimmed
        assert passages[i] == u or (i == len(used) - 1 and passages[i].startswith(u))
    if cap:
        assert sum(odd_count(u) for u in used) <= cap + 2 * len(used)


def test_fit_prompt_with_the_real_tokenizer_and_chat_template():
    from test_llm_support import shared_llm

    llm = shared_llm()
    passages = [f"[{i}] " + ("Factors are vectors with levels. " * (5 + 7 * i)) for i in range(1, 9)]

    def build(chosen):
        return [{"role": "user", "content": "\n\n".join(chosen) + "\n\nQuestion: what is a factor?"}]

    for context, reserve in ((200, 50), (512, 100), (1000, 256), (2048, 24)):
        messages, used = fit_prompt(build, passages, llm.count_chat_tokens, llm.count_tokens, context, reserve)
        assert llm.count_chat_tokens(messages) + reserve <= context
        assert used and used[0] == passages[0] or context < 300


def test_truncate_to_tokens_is_a_prefix_within_the_limit():
    text = "one two three four five six seven eight nine ten"
    cut = truncate_to_tokens(text, 4, odd_count)
    assert text.startswith(cut) and odd_count(cut) <= 4 and cut
    assert truncate_to_tokens(text, 0, odd_count) == ""
