"""Answer and summary evaluation over R-intro.pdf (Debian r-doc-pdf).

    python eval/answer_eval.py [--limit N] [--no-summary]

Answers (eval/questions/r-intro.jsonl, gold physical pages and keywords per question):
- citation accuracy: of the answers that cite a passage ([n]), the share whose cited pages include a
  gold page (a cited passage's page range touches one);
- top-passage accuracy: the first passage given to the model holds a gold page (retrieval's part);
- keyword match: share of the question's keywords found in the answer (case-insensitive, whitespace
  collapsed), averaged; and the share of answers with every keyword;
- not-found rate: questions answered "not found" (all questions here have an answer in the book).

Summary (``--baseline-summary`` also makes the previous map-reduce summary, by an earlier commit's
code, in the same run): per chapter the numbers its summary states that the chapter lacks, and how
many of the chapter's ten most distinctive words its summary holds; the overview's numbers not in
the book; the coverage and faithfulness lines. The summary itself goes to eval/results/r-intro-summary.md.

Writes eval/results/answer_eval.md/.json (answers) and summary_eval.md/.json (summary).
"""

from __future__ import annotations

import argparse
import json
import os
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


def eval_summary(cfg, baseline_ref: str | None, mode: str | None = None) -> dict:
    """Today's summary (``summarize.mode`` or ``mode``) of R-intro and, with ``baseline_ref``, the
    previous map-reduce summary made by that commit's code in this same run
    (:mod:`summary_baseline`); both scored by :func:`trust_metrics.score_summary`."""
    from pipeline.api import summarize
    from pipeline.llm import context_for, load_llm
    from pipeline.onnx_embed import embedder_for
    from pipeline.summarize import render_markdown
    from trust_metrics import score_summary

    pdf = r_manual("R-intro.pdf")
    llm = load_llm(cfg.llm, context_for(cfg))
    planned = {}
    t0 = time.perf_counter()
    book = summarize(pdf, cfg, llm=llm, cache_dir=WORK / "summary-cache", embedder=embedder_for(cfg), mode=mode,
                     on_plan=lambda doc, units: planned.update(doc=doc, units=units))
    seconds = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "r-intro-summary.md").write_text(render_markdown(book), encoding="utf-8")
    doc, units = planned["doc"], planned["units"]
    doc_text = "\n".join(sp.text for sp in doc.spans)
    all_words = Counter(re.findall(r"[a-z][a-z.]{3,}", doc_text.lower()))
    after = score_summary(units, {u.title: u.digest.text for u in book.units}, book.overview.text, doc_text,
                          _distinctive, all_words)
    after.update(mode=book.mode, faithfulness=book.faithfulness.line, coverage=book.coverage_line,
                 model_calls=book.model_calls, cache_hits=book.cache_hits, seconds=seconds,
                 points=sum(len(u.digest.points) for u in book.units), overview_points=len(book.overview.points),
                 pages_hold_points=all(p.page in u.pages for u in book.units for p in u.digest.points if p.page))
    out = {"after": after}
    if baseline_ref:
        from summary_baseline import run_baseline

        base = run_baseline(pdf, baseline_ref)
        before = score_summary(units, {u["title"]: u["summary"] for u in base["units"]}, base["overview"], doc_text,
                               _distinctive, all_words)
        before.update(ref=baseline_ref, coverage=base["coverage"], model_calls=base["model_calls"],
                      cache_hits=base["cache_hits"], seconds=base["seconds"], model=base["model"])
        out["before"] = before
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
    t, b = s["after"], s.get("before")
    lines = [f"Summary of R-intro ({t['coverage']}; {t['points']} key points in {len(t['chapters'])} units, "
             f"{t['overview_points']} in the overview; mode {t['mode']}; {t['faithfulness']}; {t['model_calls']} model "
             f"calls, {t['seconds']} s). Before: the previous map-reduce summary (code of commit {b['ref']}, same "
             f"model, made in this run: {b['model_calls']} model calls + {b['cache_hits']} from its cache, {b['seconds']} s)."
             if b else f"Summary of R-intro (mode {t['mode']}; {t['faithfulness']}); no baseline in this run.", "",
             "| metric | before (map-reduce) | after (key points + checked prose) | target |", "|---|---|---|---|",
             f"| numbers not found in their chapter | {b['numbers_not_in_chapter'] if b else '—'} | "
             f"{t['numbers_not_in_chapter']} | 0 |",
             f"| overview: numbers not found in the book | {len(b['overview_numbers_not_in_book']) if b else '—'} | "
             f"{len(t['overview_numbers_not_in_book'])} | 0 |",
             f"| key terms per chapter found in its summary (mean) | {_pct(b['key_terms_mean']) if b else '—'} | "
             f"{_pct(t['key_terms_mean'])} | ≥ 60% |", "",
             "| chapter | numbers not in chapter, before | after | key terms, before | after |", "|---|---|---|---|---|"]
    old = {c["title"]: c for c in (b or {}).get("chapters", [])}
    for c in t["chapters"]:
        o = old.get(c["title"], {})
        lines.append(f"| {c['title']} | {len(o.get('numbers_not_in_chapter', [])) if o else '—'} | "
                     f"{len(c['numbers_not_in_chapter'])} | {_pct(o.get('key_terms_in_summary'))} | "
                     f"{_pct(c['key_terms_in_summary'])} |")
    if b:
        stray = [f"{c['title']}: {', '.join(c['numbers_not_in_chapter'][:6])}" for c in b["chapters"] if c["numbers_not_in_chapter"]]
        lines += ["", "Numbers the previous summary states that its chapter lacks: " + "; ".join(stray) + "."]
    return lines + [""]


def write(results: dict, load: str = "") -> list[Path]:
    """Answers to answer_eval.md/.json, the summary to summary_eval.md/.json (either may be skipped)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    head = [f"Machine: {machine()}{load}.", ""]
    written = []
    for name, title, key, lines in (
        ("answer_eval", "Answer evaluation (R-intro.pdf)", "answers",
         lambda: _answer_lines(results["answers"], results["trusted"])),
        ("summary_eval", "Summary evaluation (R-intro.pdf)", "summary", lambda: _summary_lines(results["summary"])),
    ):
        if not results.get(key):
            continue
        out = RESULTS / f"{name}.md"
        out.write_text("\n".join([f"# {title}", ""] + head + lines()) + "\n", encoding="utf-8")
        part = {k: v for k, v in results.items() if k in ("machine", key, "trusted" if key == "answers" else key)}
        out.with_suffix(".json").write_text(json.dumps(part, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        written.append(out)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="Only the first N questions.")
    ap.add_argument("--baseline-limit", type=int, default=30, help="Questions answered the previous way (default 30).")
    ap.add_argument("--mode", choices=["auto", "extractive", "generative"], help="ask.mode (default: config.yaml's).")
    ap.add_argument("--no-summary", action="store_true", help="Skip the whole-book summary.")
    ap.add_argument("--baseline-summary", nargs="?", const="88d3e3c", metavar="REF",
                    help="Also make the previous map-reduce summary with the code of commit REF (default 88d3e3c).")
    ap.add_argument("--summary-mode", choices=["auto", "extractive", "generative"], help="summarize.mode (default: config.yaml's).")
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
        results["summary"] = eval_summary(cfg, args.baseline_summary, args.summary_mode)
    load = f"; load average {os.getloadavg()[0]:.1f} at the end (the machine is shared with other jobs)"
    for out in write(results, load):
        print(out.read_text())


if __name__ == "__main__":
    main()
