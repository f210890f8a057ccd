"""Query expansion by the LLM (query2doc) measured against the default search.

    python eval/query_expansion.py generate --model M.gguf --tag T     # the LLM writes an answer per question
    python eval/query_expansion.py score --tag T                       # then search with it

``generate``: the LLM answers each question of every set (retrieval_eval.py) in two sentences,
greedy, naming the functions, commands or terms involved (the prompt names no subject: the
question carries it). The answers are kept in eval/work/expansions-<tag>.json, written after each
question, so an interrupted run resumes; the time per answer is recorded.

``score``: each question searched as the default does, and with the LLM's answer added to what is
matched — the expansion in the BM25 query, in the embedded query, or both — while the re-ranker
still scores the question alone (Wang, Yang & Wei, "Query2doc: Query Expansion with Large Language
Models", EMNLP 2023: the generated pseudo-document appended to the query; Gao et al., "Precise
Zero-Shot Dense Retrieval without Relevance Labels" (HyDE), ACL 2023: the generated answer
embedded). Writes eval/results/query_expansion_<tag>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, load_questions, machine  # noqa: E402
from retrieval_eval import QUESTIONS, SETS  # noqa: E402

WORK = ROOT / "eval" / "work"
SYSTEM = ("Answer the question in two sentences. Name the specific functions, commands, options or terms "
          "involved.")


def expansions_path(tag: str) -> Path:
    return WORK / f"expansions-{tag}.json"


def generate(model: str, tag: str, sets: list[str], max_new_tokens: int) -> None:
    from syllabus_common.atomic import atomic_write_text
    from pipeline.config import load_config
    from pipeline.llm import load_model
    from pipeline.llm.base import options_from_config

    cfg = load_config(ROOT / "config.yaml", overrides={"llm.model": model} if model else {})
    llm = load_model(cfg)
    options = options_from_config(cfg.llm, max_new_tokens=max_new_tokens, temperature=0.0)
    path = expansions_path(tag)
    done = json.loads(path.read_text()) if path.is_file() else {"model": cfg.llm.model, "system": SYSTEM, "answers": {}}
    for name in sets:
        for q in load_questions(QUESTIONS / SETS[name][0]):
            if q["id"] in done["answers"]:
                continue
            t = time.perf_counter()
            text = llm.generate([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q["question"]}],
                                options).text
            done["answers"][q["id"]] = {"text": text.strip(), "seconds": time.perf_counter() - t}
            atomic_write_text(path, json.dumps(done, indent=1, ensure_ascii=False))
            print(f"{name} {q['id']} {time.perf_counter() - t:.1f}s", flush=True)


def use_stored(kbs: dict, tag: str) -> None:
    """Make every KB of ``kbs`` search with the answers stored by ``generate`` (by question text),
    through a registered expander, so another evaluation (rerank_llm.py --expansions) reads them."""
    from pipeline.expand import Expander, register_expander

    stored = json.loads(expansions_path(tag).read_text())["answers"]
    by_text = {q["question"]: stored[q["id"]]["text"]
               for name in SETS for q in load_questions(QUESTIONS / SETS[name][0]) if q["id"] in stored}

    class Stored(Expander):
        name = f"stored-{tag}"

        def expand(self, question: str) -> str:
            return by_text.get(question, "")  # a question scoped to a named document: none

    register_expander(Stored.name, lambda cfg, llm=None, cache=None: Stored(), replace=True)
    for kb in kbs.values():
        r = kb.cfg.retrieval
        kb.cfg = kb.cfg.model_copy(update={"retrieval": r.model_copy(update={
            "expand": r.expand.model_copy(update={"method": Stored.name})})})


def _unit(v):
    import numpy as np

    v = np.asarray(v, dtype=np.float32)
    return v / (np.linalg.norm(v) or 1.0)


# name → (label, how the expansion enters: BM25 query repeats of the question, dense query)
VARIANTS = {
    "default": ("the default search (no expansion)", None, None),
    "bm25": ("BM25 matches question + answer", 1, None),
    "bm25x3": ("BM25 matches question × 3 + answer", 3, None),
    "dense": ("question + answer embedded as one text", None, "concat"),
    "densemean": ("mean of the question's and the answer's embeddings", None, "mean"),
    "both": ("both: BM25 question + answer, embedded as one text", 1, "concat"),
    "bothx3": ("both: BM25 question × 3 + answer, embedded as one text", 3, "concat"),
    "bothx3mean": ("BM25 question × 3 + answer, mean of the embeddings", 3, "mean"),
}


def expanded_search(kb, question: str, answer: str, variant: str, k: int = 5):
    _label, repeats, dense = VARIANTS[variant]
    lexical = " ".join([question] * repeats + [answer]) if repeats else None
    vector = None
    if dense == "concat":
        vector = kb.embed_query(question + " " + answer)
    elif dense == "mean":
        vector = _unit(_unit(kb.embed_query(question)) + _unit(kb.embed_query(answer)))
    return kb.search(question, k=k, query_vector=vector, lexical_query=lexical)


CODE_WEIGHTS = (0.15, 0.3, 0.5)


def answer_code_search(kb, question: str, answer: str, weight: float, k: int = 5):
    """The "bm25" variant's candidates re-ranked by the features re-ranker plus ``weight`` × the
    share of the answer's code tokens (calls, dotted names, flags) among the passage's own."""
    from pipeline.kb.search import diversify
    from pipeline.kb.tokens import code_tokens, query_code_tokens
    from pipeline.rerank import FeatureReranker

    r = kb.cfg.retrieval
    hits = kb.search(question, k=r.rerank.depth, rerank="none", lexical_query=question + " " + answer)
    wanted = query_code_tokens(answer)
    base = FeatureReranker(r.rerank.weights, r.stemmer).scores(question, hits)
    extra = [len(wanted & set(code_tokens(h.text))) / len(wanted) if wanted else 0.0 for h in hits]
    scores = [b + weight * e for b, e in zip(base, extra)]
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    for i in order:
        hits[i].rerank_score = scores[i]
    ranked = [hits[i] for i in order]
    return diversify(ranked, k, r.diversify.max_per_doc, r.diversify.margin, r.diversify.max_per_page)[:k]


def score_main(tag: str, sets: list[str]) -> None:
    from retrieval_eval import first_hit_rank, open_kbs, score

    stored = json.loads(expansions_path(tag).read_text())
    answers = stored["answers"]
    kbs = open_kbs(["single", "library"], sets, False)
    results = {}
    for (setting, name), kb in kbs.items():
        questions = [q for q in load_questions(QUESTIONS / SETS[name][0]) if q["id"] in answers]
        if not questions:
            continue
        book = SETS[name][1]
        for variant in VARIANTS:
            ranks = [first_hit_rank(expanded_search(kb, q["question"], answers[q["id"]]["text"], variant),
                                    set(q["pages"]), book) for q in questions]
            results.setdefault(f"{setting}/{name}", {})[variant] = {**score(ranks), "ranks": ranks}
        for weight in CODE_WEIGHTS:
            ranks = [first_hit_rank(answer_code_search(kb, q["question"], answers[q["id"]]["text"], weight),
                                    set(q["pages"]), book) for q in questions]
            results[f"{setting}/{name}"][f"code{weight}"] = {**score(ranks), "ranks": ranks}
        print(setting, name, {v: round(r["hit@1"], 3) for v, r in results[f"{setting}/{name}"].items()}, flush=True)
    seconds = [a["seconds"] for a in answers.values()]
    meta = {"model": stored["model"], "system": stored["system"], "answers": len(answers),
            "p50_s": statistics.median(seconds), "machine": machine()}
    (RESULTS / f"query_expansion_{tag}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_report(results, meta, tag)


def labels() -> dict:
    return {**{v: label for v, (label, _r, _d) in VARIANTS.items()},
            **{f"code{w}": f"BM25 question + answer; re-ranker + {w} × share of the answer's code tokens in the passage"
               for w in CODE_WEIGHTS}}


def write_report(results: dict, meta: dict, tag: str) -> None:
    cells = list(results)
    lines = [
        f"# Query expansion by the LLM (query2doc): {Path(meta['model']).name}", "",
        f"Each question answered first by the LLM (greedy, up to 64 new tokens; system prompt: \"{meta['system']}\"; "
        f"{meta['answers']} answers, p50 {meta['p50_s']:.1f} s an answer on this machine), and the answer added to "
        "what the search matches; the features re-ranker, the page and document caps and the scoring are the "
        f"default's, and the re-ranker reads the question alone. Top 5. Machine: {meta['machine']}.", "",
        "Cells: hit@1 / hit@5 / MRR; *single* = the set's book alone, *library* = the seven manuals.", "",
        "| search | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells),
    ]
    for variant, label in labels().items():
        row = [results[c].get(variant) for c in cells]
        lines.append(f"| {label} | " + " | ".join(
            f"{r['hit@1']:.3f} / {r['hit@5']:.3f} / {r['mrr']:.3f}" if r else "—" for r in row) + " |")
    lines += ["", "Questions gained and lost at first place against the default (gained / lost):", "",
              "| search | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells)]
    for variant, label in list(labels().items())[1:]:
        parts = []
        for c in cells:
            base, other = results[c]["default"]["ranks"], results[c][variant]["ranks"]
            gained = sum(b != 1 and o == 1 for b, o in zip(base, other))
            lost = sum(b == 1 and o != 1 for b, o in zip(base, other))
            parts.append(f"+{gained} / −{lost}")
        lines.append(f"| {label} | " + " | ".join(parts) + " |")
    (RESULTS / f"query_expansion_{tag}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["generate", "score"])
    ap.add_argument("--model", help="llm.model for generate: a .gguf file or a model folder (default: config.yaml's)")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    if args.step == "generate":
        generate(args.model, args.tag, args.sets, args.max_new_tokens)
    else:
        score_main(args.tag, args.sets)


if __name__ == "__main__":
    main()
