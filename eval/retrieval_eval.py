"""Retrieval evaluation over a real book: hit@1, hit@5 and MRR for dense, BM25 and hybrid (RRF).

    python eval/retrieval_eval.py [--questions eval/questions/r-intro.jsonl] [--pdf R-intro.pdf]

A hit is a retrieved chunk whose page range overlaps the question's gold pages (physical page
numbers). Writes eval/results/retrieval.md and retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, build_kb, load_questions, machine, r_manual  # noqa: E402

MODES = ("dense", "bm25", "rrf")


def first_hit_rank(hits, gold: set[int]) -> int | None:
    for rank, h in enumerate(hits, 1):
        if h.page_start is not None and any(h.page_start <= p <= (h.page_end or h.page_start) for p in gold):
            return rank
    return None


def evaluate(kb, questions: list[dict], k: int = 5) -> dict:
    report = {}
    for mode in MODES:
        ranks, misses = [], []
        for q in questions:
            hits = kb.search(q["question"], k=k, fusion=mode)
            rank = first_hit_rank(hits, set(q["pages"]))
            ranks.append(rank)
            if rank is None:
                misses.append({"id": q["id"], "question": q["question"], "gold": q["pages"],
                               "got": [h.page_start for h in hits]})
        n = len(questions)
        report[mode] = {
            "hit@1": sum(r == 1 for r in ranks) / n,
            "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr": sum(1 / r for r in ranks if r) / n,
            "misses": misses,
        }
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=ROOT / "eval" / "questions" / "r-intro.jsonl")
    ap.add_argument("--pdf", type=Path, default=None)
    args = ap.parse_args()
    pdf = args.pdf or r_manual("R-intro.pdf")
    if pdf is None:
        print("R-intro.pdf not found: install the Debian package r-doc-pdf (apt-get install r-doc-pdf) or pass --pdf")
        sys.exit(0)
    questions = load_questions(args.questions)
    started = time.perf_counter()
    kb = build_kb(pdf, "kb-" + pdf.stem, fresh=True)
    report = evaluate(kb, questions)
    kb.close()
    elapsed = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"book": pdf.name, "questions": len(questions), "machine": machine(), "seconds": round(elapsed, 1)}
    (RESULTS / "retrieval.json").write_text(json.dumps({"meta": meta, "report": report}, indent=2))
    lines = [
        f"# Retrieval evaluation: {pdf.name}",
        "",
        f"{len(questions)} questions (`{args.questions.relative_to(ROOT)}`), gold = physical pages; "
        f"k = 5; config defaults (MiniLM-L6-v2, chunk 200 tokens, RRF k = 60). Machine: {meta['machine']}.",
        "",
        "| retriever | hit@1 | hit@5 | MRR |",
        "|---|---|---|---|",
    ]
    names = {"dense": "dense (FAISS)", "bm25": "BM25 (bm25s)", "rrf": "hybrid (RRF)"}
    for mode in MODES:
        r = report[mode]
        lines.append(f"| {names[mode]} | {r['hit@1']:.3f} | {r['hit@5']:.3f} | {r['mrr']:.3f} |")
    lines += ["", "Hybrid misses (not in the top 5):", ""]
    lines += [f"- {m['id']}: {m['question']} — gold {m['gold']}, got {m['got']}" for m in report["rrf"]["misses"]] or ["- none"]
    (RESULTS / "retrieval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:11]))


if __name__ == "__main__":
    main()
