"""Metrics of issue "answers a student can trust", used by eval/answer_eval.py.

Answers (evidence first, then the mode's answer; what `ask` prints):
- keyword match on the printed text (evidence block + verified answer);
- citing rate: answers whose printed text cites at least one passage (evidence always carries its
  citation; a generated sentence must cite to be printed);
- citation accuracy: of those, the share whose cited pages include a gold page;
- unsupported numbers: numbers in printed generated sentences found in none of the evidence they cite;
- evidence top-3: a gold page among the top-3 evidence sentences;
- time to first output (the evidence block) and total time.

Summary (:func:`score_summary`, the same for today's summary and the previous map-reduce one):
numbers not found in their chapter's text, the chapter's ten most distinctive words found in its
summary; the overview's numbers not found in the book.
"""

from __future__ import annotations

import statistics
import time


def _touches(page: int | None, page_end: int | None, gold: set[int]) -> bool:
    return page is not None and any(page <= g <= (page_end or page) for g in gold)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def trusted_row(q: dict, kb, llm, prompts, cfg, options, mode: str | None = None) -> dict:
    from pipeline.quantities import quantities, supports
    from pipeline.trusted import answer_hits

    started = time.perf_counter()
    hits = kb.search(q["question"])
    ans = answer_hits(q["question"], hits, kb.embedder, llm, prompts, cfg, options, mode=mode)
    total = time.perf_counter() - started
    first = total - ans.timings.get("generate_s", 0.0)  # the evidence block is printed before generation
    gold = set(q["pages"])
    printed = ans.render()
    cited = [e for e in ans.evidence if e.n in ans.cited]
    keywords = [k for k in q["keywords"] if k.strip()]
    hits_kw = [k for k in keywords if _norm(k) in _norm(printed)]
    unsupported_numbers = 0
    for v in ans.verdicts:
        if v.supported:
            texts = [e.text for e in ans.evidence if e.n in v.cited]
            unsupported_numbers += sum(not any(supports(n, quantities(t), t) for t in texts) for n in quantities(v.text))
    return {
        "id": q["id"], "mode": ans.mode, "cites": bool(cited),
        "cited_gold": any(_touches(e.page, e.page_end, gold) for e in cited) if cited else None,
        "evidence_top3_gold": any(_touches(e.page, e.page_end, gold) for e in ans.evidence[:3]),
        "keywords": len(hits_kw) / len(keywords) if keywords else None, "all_keywords": len(hits_kw) == len(keywords),
        "unsupported_numbers": unsupported_numbers, "sentences_checked": ans.faithfulness.checked,
        "sentences_dropped": ans.faithfulness.dropped, "first_output_s": round(first, 3), "seconds": round(total, 3),
        "answer": ans.answer[:300], "evidence": [f"{e.where}: {e.text[:160]}" for e in ans.evidence],
    }


def summarize_rows(rows: list[dict]) -> dict:
    n = len(rows)
    citing = [r for r in rows if r["cites"]]
    return {
        "questions": n,
        "modes": sorted({r["mode"] for r in rows}),
        "citing_rate": len(citing) / n if n else None,
        "citation_accuracy": sum(r["cited_gold"] for r in citing) / len(citing) if citing else None,
        "keyword_match": statistics.mean(r["keywords"] for r in rows if r["keywords"] is not None) if rows else None,
        "all_keywords_rate": sum(r["all_keywords"] for r in rows) / n if n else None,
        "unsupported_numbers": sum(r["unsupported_numbers"] for r in rows),
        "evidence_top3_gold": sum(r["evidence_top3_gold"] for r in rows) / n if n else None,
        "sentences_checked": sum(r["sentences_checked"] for r in rows),
        "sentences_dropped": sum(r["sentences_dropped"] for r in rows),
        "first_output_p50_s": statistics.median(r["first_output_s"] for r in rows) if rows else None,
        "total_p50_s": statistics.median(r["seconds"] for r in rows) if rows else None,
        "rows": rows,
    }


def score_summary(units, texts: dict[str, str], overview: str, doc_text: str, distinctive, book_words) -> dict:
    """One summary scored per unit: numbers it states that its chapter's text lacks, and the share of
    the chapter's ten most distinctive words it holds. ``texts``: unit title → what the summary states
    for it (prose and key points, without the summary's own page marks); ``overview``: the whole-book
    part, whose numbers are looked for in the whole document."""
    from pipeline.quantities import quantities, unsupported

    def stray(text: str, source: str) -> list[str]:
        return [q.text for q in unsupported(quantities(text), source)]

    chapters = []
    for unit in units:
        text = texts.get(unit.title, "")
        key = distinctive(unit.text, book_words)
        present = [w for w in key if w in text.lower()]
        chapters.append({"title": unit.title, "summary_words": len(text.split()),
                         "numbers_not_in_chapter": stray(text, unit.text), "key_terms": key,
                         "key_terms_in_summary": len(present) / len(key) if key else None})
    shares = [c["key_terms_in_summary"] for c in chapters if c["key_terms_in_summary"] is not None]
    return {"chapters": chapters, "numbers_not_in_chapter": sum(len(c["numbers_not_in_chapter"]) for c in chapters),
            "overview_numbers_not_in_book": stray(overview, doc_text),
            "key_terms_mean": statistics.mean(shares) if shares else None}
