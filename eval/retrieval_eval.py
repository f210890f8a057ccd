"""Retrieval evaluation over real books: hit@1, hit@5 and MRR per retriever, one book alone and in a library.

    python eval/retrieval_eval.py [--sets r-intro r-data] [--settings single library] [--fresh]
    python eval/retrieval_eval.py --embedding /path/to/all-mpnet-base-v2 --tag mpnet --settings library

Question sets (eval/questions/): ``r-intro`` on R-intro.pdf, ``r-data`` on R-data.pdf. Settings:
``single`` — the set's book alone in a KB; ``library`` — the seven r-doc-pdf manuals except the two
reference manuals in one KB. A hit is a retrieved chunk *of the set's book* whose page range
overlaps the question's gold pages (physical page numbers). The KBs are cached in eval/work/ and
reused (``--fresh`` rebuilds them). The ``llm`` row re-ranks with the configured LLM (query
likelihood; about 2.5 s a question with the bundled model on 2 cores, so ``--retrievers`` without
``llm`` for a quick run). Writes eval/results/retrieval.md and retrieval.json; with
``--embedding`` (another ``embedding.model``) the KBs are built with that model under their own
names and the results go to retrieval_<tag>.md/.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LIBRARY, RESULTS, ROOT, build_kb, load_questions, machine, r_manual  # noqa: E402

QUESTIONS = ROOT / "eval" / "questions"
SETS = {"r-intro": ("r-intro.jsonl", "R-intro.pdf"), "r-data": ("r-data.jsonl", "R-data.pdf"),
        "r-admin": ("r-admin.jsonl", "R-admin.pdf"), "r-lang": ("r-lang.jsonl", "R-lang.pdf"),
        "r-exts": ("r-exts.jsonl", "R-exts.pdf")}
# The sets every retrieval setting was chosen on (weights, depths, caps). "r-admin", "r-lang" and
# "r-exts" are held out: they were written after those choices and no eval script chooses anything on them.
TUNING_SETS = ("r-intro", "r-data")
# name → (label, search keyword arguments); "before" is the hybrid search as it was before re-ranking
# and code-aware tokens (words-only BM25 over the last section title), measured in the same run.
RETRIEVERS = {
    "dense": ("dense (FAISS)", {"fusion": "dense"}),
    "bm25": ("BM25, code-aware (bm25s)", {"fusion": "bm25"}),
    "before": ("hybrid RRF, before (words-only BM25, no re-ranking)", {"fusion": "rrf", "rerank": "none"}),
    "rrf": ("hybrid RRF, code-aware BM25, no re-ranking", {"fusion": "rrf", "rerank": "none"}),
    "nodiv": ("hybrid RRF + features re-ranker, no per-document or per-page cap",
              {"fusion": "rrf", "rerank": "features", "diversify": 0}),
    "noprox": ("hybrid RRF + features re-ranker without term proximity (the previous default)",
               {"fusion": "rrf", "rerank": "features", "weights": {"near": 0.0}}),
    "features": ("hybrid RRF + features re-ranker (default)", {"fusion": "rrf", "rerank": "features"}),
    "llm": ("hybrid RRF + features + LLM re-ranker (query likelihood, the configured LLM; opt-in)",
            {"fusion": "rrf", "rerank": "llm"}),
}


def first_hit_rank(hits, gold: set[int], book: str | None = None) -> int | None:
    """Rank (1-based) of the first hit from ``book`` (a file name; None: any) on a gold page."""
    for rank, h in enumerate(hits, 1):
        if book is not None and Path(h.path).name != book:
            continue
        if h.page_start is not None and any(h.page_start <= p <= (h.page_end or h.page_start) for p in gold):
            return rank
    return None


def miss_kind(hits, gold: set[int], book: str | None, rank: int | None) -> str | None:
    """Why the first hit is not a gold page (None when it is): another book's passage came first,
    or the right book's passage from the gold page's section, an adjacent page, or another section;
    the last three say whether a gold page is lower in the top k."""
    if rank == 1 or not hits:
        return None
    top = hits[0]
    if book is not None and Path(top.path).name != book:
        return "another book first"
    gold_hit = hits[rank - 1] if rank else None
    lower = "gold lower in the top k" if rank else "gold not in the top k"
    if gold_hit is not None and gold_hit.section == top.section:
        return f"same section, another page ({lower})"
    if top.page_start is not None and min(abs(top.page_start - p) for p in gold) <= 1:
        return f"adjacent page ({lower})"
    return f"another section of the book ({lower})"


def score(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    return {
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def evaluate(kb, questions: list[dict], book: str | None = None, k: int = 5,
             retrievers: dict | None = None) -> dict:
    """hit@1, hit@5, MRR and misses (not in the top k) per retriever; latency p50 per retriever."""
    import statistics

    report = {}
    for name, (_label, kwargs) in (retrievers or RETRIEVERS).items():
        kwargs = dict(kwargs)
        cap = kwargs.pop("diversify", None)
        with _legacy_lexical(kb, name == "before"), _diversify(kb, cap, kwargs.pop("weights", None)):
            ranks, misses, times, kinds = [], [], [], {}
            for q in questions:
                t = time.perf_counter()
                hits = kb.search(q["question"], k=k, **kwargs)
                times.append((time.perf_counter() - t) * 1000)
                rank = first_hit_rank(hits, set(q["pages"]), book)
                ranks.append(rank)
                kind = miss_kind(hits, set(q["pages"]), book, rank)
                if kind:
                    kinds[kind] = kinds.get(kind, 0) + 1
                if rank is None:
                    misses.append({"id": q["id"], "question": q["question"], "gold": q["pages"],
                                   "got": [f"{Path(h.path).stem}:{h.page_start}" for h in hits]})
        report[name] = {**score(ranks), "ranks": ranks, "misses": misses, "p50_ms": statistics.median(times),
                        "first_place_misses": kinds}
    return report


class _diversify:
    """Within the block, the per-document and per-page caps are ``max_per_doc`` (None: the config's)
    and the features re-ranker's weights are the config's updated by ``weights``."""

    def __init__(self, kb, max_per_doc: int | None, weights: dict | None = None):
        self.kb, self.max_per_doc, self.weights, self.saved = kb, max_per_doc, weights, kb.cfg

    def __enter__(self):
        r = self.saved.retrieval
        update = {}
        if self.max_per_doc is not None:
            update["diversify"] = r.diversify.model_copy(update={"max_per_doc": self.max_per_doc,
                                                                 "max_per_page": self.max_per_doc})
        if self.weights:
            update["rerank"] = r.rerank.model_copy(update={"weights": {**r.rerank.weights, **self.weights}})
        self.kb.cfg = self.saved.model_copy(update={"retrieval": r.model_copy(update=update)})
        self.kb.__dict__.pop("_rerankers", None)  # re-rankers are built from the config once per KB
        return self

    def __exit__(self, *exc):
        self.kb.cfg = self.saved
        self.kb.__dict__.pop("_rerankers", None)
        return False


class _legacy_lexical:
    """Within the block, search with the BM25 index as it was built before tokenizer v2."""

    def __init__(self, kb, active: bool):
        self.kb, self.active, self.saved = kb, active, None

    def __enter__(self):
        if not self.active:
            return self
        from pipeline.kb.catalog import PATH_SEP
        from pipeline.kb.lexical import LexicalIndex

        dense, lexical = self.kb.load_indexes()
        rows = self.kb.catalog.db.execute("SELECT id, section_path, text FROM chunks ORDER BY id").fetchall()
        texts = [(r[1].split(PATH_SEP)[-1] + "\n" + r[2]) if r[1] else r[2] for r in rows]
        legacy = LexicalIndex.build([r[0] for r in rows], texts, self.kb.cfg.retrieval.stemmer, lexical.generation, code=False)
        self.saved = lexical
        self.kb._lexical = legacy
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.kb._lexical = self.saved
        return False


def check_questions(sets: list[str]) -> int:
    """Every keyword of every question occurs in the text of one of its gold pages; prints failures."""
    import re

    import pymupdf

    failures = 0
    for name in sets:
        with pymupdf.open(r_manual(SETS[name][1])) as doc:
            pages = {i + 1: re.sub(r"\s+", " ", p.get_text()).lower() for i, p in enumerate(doc)}
        for q in load_questions(QUESTIONS / SETS[name][0]):
            for kw in q["keywords"]:
                if not any(re.sub(r"\s+", " ", kw).lower() in pages.get(p, "") for p in q["pages"]):
                    failures += 1
                    print(f"{q['id']}: keyword {kw!r} not on pages {q['pages']}")
    print(f"{failures} keyword(s) not found on their gold pages")
    return failures


def open_kbs(settings: list[str], sets: list[str], fresh: bool, embedding: str | None = None, tag: str = "",
             overrides: dict | None = None) -> dict:
    """{(setting, set name): open KB}; a library KB is shared by all sets. ``embedding``: another
    embedding model; ``overrides``: other config settings (dotted keys); KBs built with either are
    named with ``-tag``."""
    cfg = None
    overrides = {**(overrides or {}), **({"embedding.model": embedding} if embedding else {})}
    if overrides:
        from pipeline.config import load_config

        cfg = load_config(ROOT / "config.yaml", overrides=overrides)
    suffix = f"-{tag}" if tag else ""
    kbs, library = {}, None
    for name in sets:
        book = r_manual(SETS[name][1])
        if "single" in settings:
            kbs[("single", name)] = build_kb(book, "kb-" + book.stem + suffix, fresh=fresh, cfg=cfg)
        if "library" in settings:
            if library is None:
                library = build_kb([r_manual(m) for m in LIBRARY], "kb-library" + suffix, fresh=fresh, cfg=cfg)
            kbs[("library", name)] = library
    for kb in {id(kb): kb for kb in kbs.values()}.values():
        kb.rebuild_indexes()  # seconds; the indexes then reflect this checkout's code for certain
    return kbs


def write_report(results: dict, meta: dict, tag: str = "") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"retrieval_{tag}" if tag else "retrieval"
    slim = {f"{s}/{q}": {r: {k: v for k, v in m.items() if k != "ranks"} for r, m in rep.items()}
            for (s, q), rep in results.items()}
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "report": slim}, indent=2))
    described = ", ".join(f"`{n}` ({meta['questions'][n]} questions on {SETS[n][1]})" for n in meta["sets"])
    lines = [
        "# Retrieval evaluation: one book alone and in a library of seven",
        "",
        f"Question sets: {described}; "
        "gold = physical pages, and a hit must come from the set's own book. Settings: **single** = the "
        f"book alone in a KB; **library** = {', '.join(m.removesuffix('.pdf') for m in LIBRARY)} in one KB "
        f"({meta.get('library_chunks', '?')} chunks). k = 5; config defaults ({meta['embedding']}, chunk 200 tokens, "
        f"RRF k = 60, re-rank depth 40). p50 = in-process search latency. Machine: {meta['machine']}.",
        "",
        "| setting | questions | retriever | hit@1 | hit@5 | MRR | p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for (setting, qset), rep in results.items():
        for name, m in rep.items():
            lines.append(f"| {setting} | {qset} | {RETRIEVERS[name][0]} | {m['hit@1']:.3f} | {m['hit@5']:.3f} "
                         f"| {m['mrr']:.3f} | {m['p50_ms']:.0f} |")
    lines += ["", "Why the default's first passage is not a gold page (questions per kind):", "",
              "| setting | questions | kind | questions |", "|---|---|---|---|"]
    for (setting, qset), rep in results.items():
        kinds = rep.get("features", {}).get("first_place_misses", {})
        lines += [f"| {setting} | {qset} | {kind} | {n} |" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    for (setting, qset), rep in results.items():
        misses = rep.get("features", {}).get("misses", [])
        lines += ["", f"Default retriever's misses (not in the top 5), {setting} / {qset}:", ""]
        lines += [f"- {m['id']}: {m['question']} — gold {m['gold']}, got {m['got']}" for m in misses] or ["- none"]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8 + sum(len(r) for r in results.values())]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS))
    ap.add_argument("--settings", nargs="+", choices=["single", "library"], default=["single", "library"])
    ap.add_argument("--retrievers", nargs="+", choices=list(RETRIEVERS), default=list(RETRIEVERS))
    ap.add_argument("--fresh", action="store_true", help="rebuild the cached KBs in eval/work/")
    ap.add_argument("--embedding", help="another embedding.model (a folder): KBs built with it, results tagged")
    ap.add_argument("--tag", default="", help="names the KBs and results of an --embedding run")
    ap.add_argument("--check", action="store_true", help="only check the question sets' keywords against their gold pages")
    args = ap.parse_args()
    if args.embedding and not args.tag:
        ap.error("--embedding needs --tag (its KBs and results are kept apart from the default's)")
    if any(r_manual(m) is None for m in LIBRARY):
        print("the R manuals are not installed: apt-get install r-doc-pdf")
        sys.exit(0)
    if args.check:
        sys.exit(1 if check_questions(args.sets) else 0)
    started = time.perf_counter()
    kbs = open_kbs(args.settings, args.sets, args.fresh, args.embedding, args.tag)
    chosen = {r: RETRIEVERS[r] for r in args.retrievers}
    results = {}
    for (setting, qset), kb in kbs.items():
        questions = load_questions(QUESTIONS / SETS[qset][0])
        kb.search("warm up", k=5)
        results[(setting, qset)] = evaluate(kb, questions, SETS[qset][1], retrievers=chosen)
    meta = {"sets": args.sets, "questions": {n: len(load_questions(QUESTIONS / SETS[n][0])) for n in args.sets},
            "machine": machine(), "seconds": round(time.perf_counter() - started, 1),
            "embedding": Path(args.embedding).name if args.embedding else "MiniLM-L6-v2"}
    lib = next((kb for (s, _q), kb in kbs.items() if s == "library"), None)
    if lib is not None:
        meta["library_chunks"] = lib.catalog.count_chunks()
    write_report(results, meta, args.tag)


if __name__ == "__main__":
    main()
