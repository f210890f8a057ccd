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


def eval_trusted(cfg, limit: int | None, mode: str | None = None) -> dict:
    """Evidence first, then the configured mode's answer, verified (what `ask` prints today)."""
    from pipeline.api import load_model
    from pipeline.llm import options_from_config
    from pipeline.prompting import load_prompts
    from trust_metrics import summarize_rows, trusted_row

    kb = build_kb(r_manual("R-intro.pdf"), "kb-R-intro")
    llm = load_model(cfg, kb.path)
    prompts = load_prompts(cfg)
    options = options_from_config(cfg.llm, max_new_tokens=ANSWER_TOKENS)
    kb.search("warm up")  # load the indexes and the embedder outside the timings, as for the baseline
    questions = load_questions(ROOT / "eval" / "questions" / "r-intro.jsonl")[:limit]
    out = summarize_rows([trusted_row(q, kb, llm, prompts, cfg, options, mode) for q in questions])
    kb.close()
    out["model"] = llm.describe()
    return out


def eval_answers(cfg, limit: int | None) -> dict:
    """The previous path, kept as the baseline: passages packed into the prompt, the model's answer as written."""
    from pipeline.api import load_model
    from pipeline.ask import finish, prepare
    from pipeline.llm import options_from_config
    from pipeline.prompting import load_prompts

    pdf = r_manual("R-intro.pdf")
    kb = build_kb(pdf, "kb-R-intro")
    llm = load_model(cfg, kb.path)
    prompts = load_prompts(cfg)
    options = options_from_config(cfg.llm, max_new_tokens=ANSWER_TOKENS)
    questions = load_questions(ROOT / "eval" / "questions" / "r-intro.jsonl")[:limit]
    rows = []
    kb.search("warm up")
    for q in questions:
        started = time.perf_counter()
        prepared = prepare(kb, llm, prompts, cfg, q["question"], max_new_tokens=ANSWER_TOKENS)
        stream = llm.stream(prepared.messages, options) if prepared.found else None
        text = stream.text() if stream is not None else prepared.messages[-1]["content"]
        ans = finish(prepared, text, stream, llm, started).as_dict()
        gold = set(q["pages"])
        cited = [c for c in ans["citations"] if c["cited"]]
        keywords = [k for k in q["keywords"] if k.strip()]
        hits = [k for k in keywords if _norm(k) in _norm(ans["answer"])] if prepared.found else []
        rows.append({
            "id": q["id"], "found": ans["found"], "cites": bool(cited),
            "cited_gold": any(_touches(c, gold) for c in cited) if cited else None,
            "top_gold": _touches(ans["citations"][0], gold) if ans["citations"] and result.found else False,
            "any_gold": any(_touches(c, gold) for c in ans["citations"]) if prepared.found else False,
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
        "total_p50_s": statistics.median(r["seconds"] for r in rows) if rows else None,
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


def eval_summary(cfg, baseline: bool) -> dict:
    """Key points + verified prose per chapter; with ``baseline`` also today's map-reduce summary
    (87 model calls on R-intro: about half an hour on 2 cores unless eval/work/summary-cache has them)."""
    from pipeline.embed import Embedder
    from pipeline.llm import context_for, load_llm, options_from_config
    from pipeline.outline import from_pdf
    from pipeline.prompting import load_prompts
    from pipeline.sumcache import SummaryCache
    from pipeline.summarize import Summarizer
    from trust_metrics import digest_chapters

    pdf = r_manual("R-intro.pdf")
    llm = load_llm(cfg.llm, context_for(cfg))
    cache = SummaryCache(WORK / "summary-cache")  # a re-run of the eval is instant
    doc = from_pdf(pdf, cfg.chunking.strip_headers)
    s = Summarizer(llm, load_prompts(cfg), cache, cfg.summarize, options_from_config(cfg.llm))
    units = s.plan(doc)
    all_words = Counter(re.findall(r"[a-z][a-z.]{3,}", " ".join(sp.text for sp in doc.spans).lower()))
    out = {"trusted": digest_chapters(doc, units, Embedder.from_config(cfg), _distinctive, all_words)}
    if baseline:
        t0 = time.perf_counter()
        book = s.run(doc, units)
        chapters = []
        for unit, summary in zip(units, book.units):
            key = _distinctive(unit.text, all_words)
            present = [w for w in key if w in summary.summary.lower()]
            chapters.append({"title": summary.title, "pages": summary.where, "summary_words": len(summary.summary.split()),
                             "key_terms_in_summary": len(present) / len(key) if key else None})
        out.update(coverage=book.coverage_line, chapters=chapters, model_calls=book.model_calls,
                   cache_hits=book.cache_hits, seconds=round(time.perf_counter() - t0, 1))
    cache.close()
    return out


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _secs(x) -> str:
    return "—" if x is None else f"{x:.2f} s"


def _answer_lines(a: dict, t: dict) -> list[str]:
    m = t["model"]
    return [
        f"Model: {m.get('model')} ({m.get('backend')}, {m.get('precision')}); {t['questions']} questions from "
        f"eval/questions/r-intro.jsonl; evidence-first mode used: {', '.join(t['modes'])}. \"Today\" is the previous "
        f"path (passages packed into the prompt, answers up to {ANSWER_TOKENS} tokens) on the first {a['questions']} "
        "questions, measured in the same run.", "",
        "| metric | today | evidence first |", "|---|---|---|",
        f"| answers holding every keyword (printed text) | {_pct(a['all_keywords_rate'])} | {_pct(t['all_keywords_rate'])} |",
        f"| keyword match (mean share) | {_pct(a['keyword_match'])} | {_pct(t['keyword_match'])} |",
        f"| answers citing at least one passage | {_pct(a['citing_rate'])} | {_pct(t['citing_rate'])} |",
        f"| citation accuracy (a cited page is a gold page) | {_pct(a['citation_accuracy'])} | {_pct(t['citation_accuracy'])} |",
        f"| unsupported numbers in printed answers | not measured | {t['unsupported_numbers']} |",
        f"| a gold page among the top-3 evidence sentences | — | {_pct(t['evidence_top3_gold'])} |",
        f"| top passage holds a gold page (retrieval) | {_pct(a['top_passage_accuracy'])} | — |",
        f"| generated sentences checked / dropped | — | {t['sentences_checked']} / {t['sentences_dropped']} |",
        f"| time to first output, p50 (first token / evidence block) | {_secs(a['first_token_p50_s'])} | {_secs(t['first_output_p50_s'])} |",
        f"| total answer time, p50 | {_secs(a.get('total_p50_s'))} | {_secs(t['total_p50_s'])} |", "",
    ]


def _summary_lines(s: dict) -> list[str]:
    t = s["trusted"]
    lines = [f"Summary (key points by MMR per chapter, bullets with pages; {t['faithfulness']}; {t['seconds']} s): "
             f"numbers not found in their chapter: {t['numbers_not_in_chapter']}; key terms per chapter found in its "
             f"summary: {_pct(t['key_terms_mean'])} (mean).", ""]
    base = {c["title"]: c for c in s.get("chapters", [])}
    lines += ["| chapter | key points | summary words | numbers not in chapter | key terms (today) | key terms (key points) |",
              "|---|---|---|---|---|---|"]
    for c in t["chapters"]:
        old = base.get(c["title"], {}).get("key_terms_in_summary")
        lines.append(f"| {c['title']} | {c['points']} | {c['summary_words']} | {len(c['numbers_not_in_chapter'])} | "
                     f"{'—' if old is None else f'{100 * old:.0f}%'} | {_pct(c['key_terms_in_summary'])} |")
    return lines + [""]


def write(results: dict) -> Path:
    lines = ["# Answer and summary evaluation (R-intro.pdf)", "", f"Machine: {machine()}.", ""]
    if results.get("answers"):
        lines += _answer_lines(results["answers"], results["trusted"])
    if results.get("summary"):
        lines += _summary_lines(results["summary"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "answer_eval.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="Only the first N questions.")
    ap.add_argument("--baseline-limit", type=int, default=30, help="Questions answered the previous way (default 30).")
    ap.add_argument("--mode", choices=["auto", "extractive", "generative"], help="ask.mode (default: config.yaml's).")
    ap.add_argument("--no-summary", action="store_true", help="Skip the whole-book summary.")
    ap.add_argument("--baseline-summary", action="store_true", help="Also run the previous map-reduce summary.")
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
        results["answers"] = eval_answers(cfg, min(args.baseline_limit, args.limit or args.baseline_limit))
        results["trusted"] = eval_trusted(cfg, args.limit, args.mode)
    if not args.no_summary:
        results["summary"] = eval_summary(cfg, args.baseline_summary)
    print(write(results).read_text())


if __name__ == "__main__":
    main()
