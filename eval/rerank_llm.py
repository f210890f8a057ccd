"""Can the configured LLM re-rank? Its yes/no relevance judgements measured against the fused order.

    python eval/rerank_llm.py [--questions 30] [--depth 10] [--setting library] [--model M.gguf --tag T]

Loads ``llm.model`` from config.yaml (even one listed as unable: this script is how that is
decided), or ``--model`` instead, re-ranks the fused top ``depth`` of the first N R-intro questions with the ``llm``
re-ranker, and reports hit@1 / hit@5 / MRR against the same questions without re-ranking, plus
the time per question. Writes eval/results/rerank_llm.md (rerank_llm_<tag>.md with ``--tag``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, load_questions, machine  # noqa: E402
from retrieval_eval import QUESTIONS, SETS, first_hit_rank, open_kbs, score  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--setting", choices=["single", "library"], default="library")
    ap.add_argument("--model", help="llm.model for this run: a .gguf file or a model folder")
    ap.add_argument("--tag", help="results go to rerank_llm_<tag>.md")
    args = ap.parse_args()
    from pipeline.llm import context_for, load_llm
    from pipeline.rerank import register_reranker, unregister_reranker
    from pipeline.rerank_models import LLMReranker

    kb = open_kbs([args.setting], ["r-intro"], fresh=False)[(args.setting, "r-intro")]
    llm_cfg = kb.cfg.llm.model_copy(update={"model": args.model}) if args.model else kb.cfg.llm
    llm = load_llm(llm_cfg, context_for(kb.cfg, kb.path))
    register_reranker("llm-measured", lambda cfg: LLMReranker(llm, depth=args.depth), replace=True)
    questions = load_questions(QUESTIONS / SETS["r-intro"][0])[: args.questions]
    book = SETS["r-intro"][1]
    results = {}
    for method in ("none", "features", "llm-measured"):
        ranks, times = [], []
        for q in questions:
            t = time.perf_counter()
            hits = kb.search(q["question"], k=5, rerank=method)
            times.append(time.perf_counter() - t)
            ranks.append(first_hit_rank(hits, set(q["pages"]), book))
        results[method] = {**score(ranks), "p50_s": statistics.median(times)}
    unregister_reranker("llm-measured")
    lines = [
        f"# LLM re-ranker: {Path(llm_cfg.model).name}",
        "",
        f"First {len(questions)} R-intro questions, {args.setting} setting; the LLM judges the fused top "
        f"{args.depth} (yes adds 1 to the normalised fused score). Machine: {machine()}.",
        "",
        "| re-ranker | hit@1 | hit@5 | MRR | s per question (p50) |",
        "|---|---|---|---|---|",
    ]
    for method, m in results.items():
        lines.append(f"| {method} | {m['hit@1']:.3f} | {m['hit@5']:.3f} | {m['mrr']:.3f} | {m['p50_s']:.2f} |")
    (RESULTS / (f"rerank_llm_{args.tag}.md" if args.tag else "rerank_llm.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
