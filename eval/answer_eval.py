"""Answer and summary evaluation over R-intro.pdf (Debian r-doc-pdf).

    python eval/answer_eval.py [--limit N] [--no-summary]

Answers (eval/questions/r-intro.jsonl, gold physical pages and keywords per question):
- citation accuracy: of the answers that cite a passage ([n]), the share whose cited pages include a
  gold page (a cited passage's page range touches one);
- top-passage accuracy: the first passage given to the model holds a gold page (retrieval's part);
- keyword match: share of the question's keywords found in the answer (case-insensitive, whitespace
  collapsed), averaged; and the share of answers with every keyword;
- not-found rate: questions answered "not found" (all questions here have an answer in the book).

Summary: per chapter its page range, input tokens, summary length, and how many of the chapter's ten
most distinctive words appear in its summary; the coverage line.

Writes eval/results/answer_eval.md and .json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, WORK, build_kb, load_questions, machine, r_manual  # noqa: E402

ANSWER_TOKENS = 160


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _touches(c: dict, gold: set[int]) -> bool:
    if c["page"] is None:
        return False
    return any(c["page"] <= g <= (c["page_end"] or c["page"]) for g in gold)


def eval_answers(cfg, limit: int | None) -> dict:
    from pipeline.api import answer, load_model
    from pipeline.prompting import load_prompts

    pdf = r_manual("R-intro.pdf")
    kb = build_kb(pdf, "kb-R-intro")
    llm = load_model(cfg, kb.path)
    prompts = load_prompts(cfg)
    questions = load_questions(ROOT / "eval" / "questions" / "r-intro.jsonl")[:limit]
    rows = []
    for q in questions:
        result = answer(kb, llm, q["question"], max_new_tokens=ANSWER_TOKENS, prompts=prompts, cfg=cfg)
        ans = result.as_dict()
        gold = set(q["pages"])
        cited = [c for c in ans["citations"] if c["cited"]]
        keywords = [k for k in q["keywords"] if k.strip()]
        hits = [k for k in keywords if _norm(k) in _norm(ans["answer"])] if result.found else []
        rows.append({
            "id": q["id"], "found": ans["found"], "cites": bool(cited),
            "cited_gold": any(_touches(c, gold) for c in cited) if cited else None,
            "top_gold": _touches(ans["citations"][0], gold) if ans["citations"] and result.found else False,
            "any_gold": any(_touches(c, gold) for c in ans["citations"]) if result.found else False,
            "keywords": len(hits) / len(keywords) if keywords else None, "all_keywords": len(hits) == len(keywords),
            "first_token_s": ans["timings"].get("first_token_s"), "seconds": ans["timings"]["total_s"],
            "similarity": ans["best_similarity"], "answer": ans["answer"][:300],
        })
    kb.close()
    n = len(rows)
    citing = [r for r in rows if r["cites"]]
    found = [r for r in rows if r["found"]]
    ttft = [r["first_token_s"] for r in rows if r["first_token_s"] is not None]
    return {
        "questions": n,
        "not_found_rate": 1 - len(found) / n if n else None,
        "citing_rate": len(citing) / len(found) if found else None,
        "citation_accuracy": sum(r["cited_gold"] for r in citing) / len(citing) if citing else None,
        "top_passage_accuracy": sum(r["top_gold"] for r in found) / len(found) if found else None,
        "context_recall": sum(r["any_gold"] for r in found) / len(found) if found else None,
        "keyword_match": statistics.mean(r["keywords"] for r in rows if r["keywords"] is not None) if rows else None,
        "all_keywords_rate": sum(r["all_keywords"] for r in rows) / n if n else None,
        "first_token_p50_s": statistics.median(ttft) if ttft else None,
        "model": llm.describe(), "rows": rows,
    }


_STOP = set("""this that with from have which when where there their they will would should could into been
were than then them these those what your also such only other more most some each many much very used using
uses value values function functions example examples following given""".split())


def _distinctive(text: str, book: Counter, n: int = 10) -> list[str]:
    words = Counter(w for w in re.findall(r"[a-z][a-z.]{3,}", text.lower()) if w not in _STOP)
    total_book = sum(book.values()) or 1
    total = sum(words.values()) or 1
    score = {w: (c / total) / ((book[w] + 1) / total_book) * min(c, 5) for w, c in words.items() if c >= 2}
    return sorted(score, key=lambda w: -score[w])[:n]


def eval_summary(cfg) -> dict:
    from pipeline.api import load_model, summarize

    pdf = r_manual("R-intro.pdf")
    llm = load_model(cfg)
    t0 = time.perf_counter()
    planned: dict = {}
    book = summarize(pdf, cfg, llm=llm, cache_dir=WORK / "summary-cache",  # a re-run of the eval is instant
                     on_plan=lambda d, u: planned.update(doc=d, units=u))
    doc, units = planned["doc"], planned["units"]
    all_words = Counter(re.findall(r"[a-z][a-z.]{3,}", " ".join(sp.text for sp in doc.spans).lower()))
    chapters = []
    for unit, summary in zip(units, book.units):
        key = _distinctive(unit.text, all_words)
        present = [w for w in key if w in summary.summary.lower()]
        chapters.append({
            "title": summary.title, "pages": summary.where, "n_pages": len(summary.pages),
            "input_tokens": summary.input_tokens, "pieces": summary.pieces,
            "summary_words": len(summary.summary.split()), "summary_tokens": llm.count_tokens(summary.summary),
            "key_terms": key, "key_terms_in_summary": len(present) / len(key) if key else None,
        })
    return {"coverage": book.coverage_line, "chapters": chapters, "overview_words": len(book.overview.split()),
            "model_calls": book.model_calls, "cache_hits": book.cache_hits, "seconds": round(time.perf_counter() - t0, 1)}


def write(results: dict) -> Path:
    lines = ["# Answer and summary evaluation (R-intro.pdf)", "", f"Machine: {machine()}.", ""]
    a = results.get("answers")
    if a:
        pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        m = a["model"]
        lines += [f"Model: {m.get('model')} ({m.get('backend')}, {m.get('precision')}), answers up to {ANSWER_TOKENS} tokens, "
                  f"{a['questions']} questions from eval/questions/r-intro.jsonl.", "",
                  "| metric | value |", "|---|---|",
                  f"| citation accuracy (a cited page is a gold page; answers that cite) | {pct(a['citation_accuracy'])} |",
                  f"| answers that cite at least one passage | {pct(a['citing_rate'])} |",
                  f"| top passage holds a gold page | {pct(a['top_passage_accuracy'])} |",
                  f"| some passage given holds a gold page | {pct(a['context_recall'])} |",
                  f"| keyword match (mean share of keywords in the answer) | {pct(a['keyword_match'])} |",
                  f"| answers with every keyword | {pct(a['all_keywords_rate'])} |",
                  f"| not-found rate (every question has an answer) | {pct(a['not_found_rate'])} |",
                  f"| time to first token, p50 | {a['first_token_p50_s']:.2f} s |" if a["first_token_p50_s"] else "", ""]
    s = results.get("summary")
    if s:
        lines += [f"Summary: {s['coverage']}; {s['model_calls']} model calls ({s['cache_hits']} cached), {s['seconds']} s; "
                  f"whole-book overview {s['overview_words']} words.", "",
                  "| chapter | pages | input tokens | pieces | summary words | key terms in summary |", "|---|---|---|---|---|---|"]
        for c in s["chapters"]:
            kt = "—" if c["key_terms_in_summary"] is None else f"{100 * c['key_terms_in_summary']:.0f}%"
            lines.append(f"| {c['title']} | {c['pages']} | {c['input_tokens']} | {c['pieces']} | {c['summary_words']} | {kt} |")
        lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "answer_eval.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="Only the first N questions.")
    ap.add_argument("--no-summary", action="store_true", help="Skip the whole-book summary.")
    ap.add_argument("--no-answers", action="store_true", help="Skip the questions.")
    args = ap.parse_args()
    if r_manual("R-intro.pdf") is None:
        raise SystemExit("R-intro.pdf is not installed (Debian package r-doc-pdf); nothing to evaluate")
    from pipeline.config import load_config
    from syllabus_common.models import enforce_offline

    cfg = load_config(ROOT / "config.yaml")
    enforce_offline(cfg.offline)
    results: dict = {"machine": machine()}
    if not args.no_answers:
        results["answers"] = eval_answers(cfg, args.limit)
    if not args.no_summary:
        results["summary"] = eval_summary(cfg)
    print(write(results).read_text())


if __name__ == "__main__":
    main()
