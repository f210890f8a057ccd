"""How retrieval depends on the chunk size: the library KB built at several ``chunking.size`` values.

    python eval/chunk_size.py [--sizes 96 128 160 200]

Each size gets its own library KB (the seven manuals of retrieval_eval.py) in eval/work/, with the
overlap kept at 16% of the size as in the default (200 / 32). Every question set is asked in the
library and scoped to its own book (``--doc``, the *single* setting without a KB of its own: BM25's
term statistics still come from the whole library), with hybrid search alone and with the default
``features`` re-ranker, whose weights were chosen at size 200. Writes eval/results/chunk_size.md and
.json. The script chooses nothing; the sets outside retrieval_eval.TUNING_SETS are marked held out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LIBRARY, RESULTS, load_questions, machine, r_manual  # noqa: E402
from retrieval_eval import QUESTIONS, SETS, TUNING_SETS, evaluate, open_kbs  # noqa: E402

DEFAULT_SIZE = 200
RETRIEVERS = {"rrf": ("hybrid RRF, no re-ranking", {"fusion": "rrf", "rerank": "none"}),
              "features": ("hybrid RRF + features re-ranker (default)", {"fusion": "rrf", "rerank": "features"})}


def library_kb(size: int):
    """The library KB chunked at ``size`` tokens (overlap 16%), named ``kb-library-c<size>``; the
    default size's is retrieval_eval.py's own."""
    overrides = {"chunking.size": size, "chunking.overlap": round(size * 0.16)}
    tag = "" if size == DEFAULT_SIZE else f"c{size}"
    return next(iter(open_kbs(["library"], ["r-intro"], False, tag=tag, overrides=overrides).values()))


def measure(kb, sets: list[str]) -> dict:
    """{"setting/set/retriever": {hit@1, hit@5, mrr}} for the library and each book scoped."""
    out = {}
    for name in sets:
        questions = load_questions(QUESTIONS / SETS[name][0])
        book = SETS[name][1]
        scoped = {k: (label, {**kw, "docs": [Path(book).stem]}) for k, (label, kw) in RETRIEVERS.items()}
        for setting, retrievers in (("library", RETRIEVERS), ("scoped", scoped)):
            for r, m in evaluate(kb, questions, book, retrievers=retrievers).items():
                out[f"{setting}/{name}/{r}"] = {k: round(m[k], 3) for k in ("hit@1", "hit@5", "mrr")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[96, 128, 160, 200])
    ap.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["r-intro", "r-data", "r-admin"])
    args = ap.parse_args()
    if any(r_manual(m) is None for m in LIBRARY):
        print("the R manuals are not installed: apt-get install r-doc-pdf")
        sys.exit(0)
    started = time.perf_counter()
    results, chunks = {}, {}
    for size in args.sizes:
        kb = library_kb(size)
        chunks[size] = kb.catalog.count_chunks()
        results[size] = measure(kb, args.sets)
        print(f"size {size}: {chunks[size]} chunks", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "seconds": round(time.perf_counter() - started, 1), "chunks": chunks,
            "tuning_sets": [s for s in args.sets if s in TUNING_SETS]}
    (RESULTS / "chunk_size.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    held = [s for s in args.sets if s not in TUNING_SETS]
    lines = [
        "# Retrieval by chunk size (library KB of seven R manuals)",
        "",
        "Each size has its own library KB (overlap 16% of the size). *library*: the question asked of all "
        "seven manuals; *scoped*: the same KB searched in the set's own book only (`--doc`). The features "
        "re-ranker keeps the weights chosen at size 200. Cells: hit@1 / hit@5 / MRR. "
        f"Held out (not used to choose): {', '.join(held) or 'none'}. Machine: {machine()}.",
        "",
        "| size | chunks | setting | questions | hybrid, no re-ranking | features re-ranker (default) |",
        "|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        for setting in ("scoped", "library"):
            for name in args.sets:
                cells = [results[size][f"{setting}/{name}/{r}"] for r in RETRIEVERS]
                text = [f"{c['hit@1']:.3f} / {c['hit@5']:.3f} / {c['mrr']:.3f}" for c in cells]
                lines.append(f"| {size} | {chunks[size]} | {setting} | {name} | {text[0]} | {text[1]} |")
    (RESULTS / "chunk_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
