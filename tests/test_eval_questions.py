"""The retrieval evaluation's question sets are well-formed and all of them are reported.

The keyword check against the gold pages needs the R manuals (``eval/retrieval_eval.py --check``);
this checks what can be checked without them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "eval" / "questions"


def _eval():
    """eval/retrieval_eval.py and the question loader of eval/common.py."""
    sys.path.insert(0, str(ROOT / "eval"))
    try:
        import common
        import retrieval_eval
    finally:
        sys.path.remove(str(ROOT / "eval"))
    return retrieval_eval, common.load_questions


def test_every_question_file_is_an_evaluated_set_and_the_held_out_sets_are_not_tuned_on():
    retrieval_eval, _load = _eval()
    sets, tuning = retrieval_eval.SETS, retrieval_eval.TUNING_SETS
    files = {p.name for p in QUESTIONS.glob("*.jsonl")}
    assert files == {f for f, _book in sets.values()}
    assert set(tuning) < set(sets)  # at least one set is held out
    assert {"r-admin", "r-lang"} <= set(sets) - set(tuning)


@pytest.mark.parametrize("name", sorted(p.name for p in QUESTIONS.glob("*.jsonl")))
def test_a_question_set_has_unique_ids_gold_pages_and_keywords(name):
    rows = _eval()[1](QUESTIONS / name)
    assert len(rows) >= 40
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert len({i.rstrip("0123456789") for i in ids}) == 1  # one prefix per set
    for r in rows:
        assert set(r) >= {"id", "question", "pages", "keywords", "answer"}, r["id"]
        assert r["question"].strip() and r["answer"].strip(), r["id"]
        pages = r["pages"]
        assert pages and all(isinstance(p, int) and p >= 1 for p in pages), r["id"]
        assert pages == list(range(pages[0], pages[0] + len(pages))), r["id"]  # one page or a page break
        assert 1 <= len(r["keywords"]) <= 3 and all(k.strip() for k in r["keywords"]), r["id"]
