"""The LLM re-ranker (query likelihood) measured against the features re-ranker, and its weights chosen.

    python eval/rerank_llm.py [--settings single library] [--questions N] [--model M.gguf --tag T] [--expansions TAG]

Loads ``llm.model`` from config.yaml (or ``--model``) and searches every question of both sets
(retrieval_eval.py) with ``retrieval.rerank.method: llm``: the features re-ranker's first 15
passages of distinct pages re-ordered by features score + weight × log P(question | passage).
Each read passage's features score and log-likelihood are recorded, so the same run also scores
other depths and weights without reading again: a grid, the choice by the rule of rerank_tune.py
(the largest *smallest* library hit@1 gain over the two sets) and two-fold cross-validation of
that choice. Reports hit@1 / hit@5 / MRR against the features re-ranker and the time per
question. Writes eval/results/rerank_llm.md (rerank_llm_<tag>.md with ``--tag``) and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, load_questions, machine  # noqa: E402
from retrieval_eval import QUESTIONS, SETS, TUNING_SETS, first_hit_rank, open_kbs, score  # noqa: E402

DEPTHS = (5, 10, 15)
WEIGHTS = (0.0, 0.025, 0.05, 0.1, 0.2)  # per nat of log-likelihood


def _is_gold(hit, book: str, pages: set[int]) -> bool:
    return (Path(hit.path).name == book and hit.page_start is not None
            and any(hit.page_start <= p <= (hit.page_end or hit.page_start) for p in pages))


def collect(kb, questions, book, reranker, k=5, on_row=None) -> list[dict]:
    """Per question: the real search's rank of the first gold hit and its time, and every passage
    the LLM read (features score, log-likelihood, gold) with the passages after them."""
    rows = []
    for q in questions:
        reranker.record = []
        t = time.perf_counter()
        hits = kb.search(q["question"], k=max(k, max(DEPTHS)), rerank="llm-measured")
        seconds = time.perf_counter() - t
        gold = set(q["pages"])
        read = {id(h): (f, ll) for h, f, ll in reranker.record}
        rows.append({
            "id": q["id"], "seconds": seconds, "rank": first_hit_rank(hits[:k], gold, book),
            "read": [{"features": read[id(h)][0], "ll": read[id(h)][1], "gold": _is_gold(h, book, gold)}
                     for h in hits if id(h) in read],
            "after": [_is_gold(h, book, gold) for h in hits if id(h) not in read],
        })
        if on_row is not None:
            on_row(rows)
    return rows


def reorder(row: dict, depth: int, weight: float, combine: str = "nats", first: int = 0) -> list[bool]:
    """Gold flags in the order a re-ranker of this depth and weight would give (features order below).

    ``combine``: "nats" adds weight × log-likelihood (the re-ranker's rule); "z" adds weight × the
    log-likelihood standardised over the passages read (a scale free of the question's length).
    ``first``: only that many first places come from the combined order, the rest keep the features
    order (0: all of them)."""
    read = sorted(row["read"], key=lambda c: -c["features"])
    top, rest = read[:depth], read[depth:]
    f = np.array([c["features"] for c in top])
    f = (f - f.min()) / ((f.max() - f.min()) or 1.0) if len(f) else f
    ll = np.array([c["ll"] for c in top])
    if combine == "z" and len(ll):
        ll = (ll - ll.mean()) / (ll.std() or 1.0)
    order = list(np.argsort(-(f + weight * ll), kind="stable"))
    if first:
        order = order[:first] + [i for i in range(len(top)) if i not in order[:first]]
    return [top[i]["gold"] for i in order] + [c["gold"] for c in rest] + row["after"]


def metrics(rows: list[dict], depth: int, weight: float, k: int = 5, **how) -> dict:
    ranks = []
    for row in rows:
        flags = reorder(row, depth, weight, **how)[:k]
        ranks.append(flags.index(True) + 1 if True in flags else None)
    return score(ranks)


def choice_setting(columns) -> str:
    """The setting the choice is made on: the library, or the single book when a run has no library."""
    return "library" if any(s == "library" for s, _ in columns) else "single"


def choose(data: dict, keep) -> tuple[int, float] | None:
    """(depth, weight) with the largest smallest library hit@1 gain over the tuning sets (the
    single-book columns when a run has no library); ties: mean MRR gain. None when the run has no
    tuning set (a held-out set chooses nothing)."""
    setting = choice_setting(data)
    lib = {name: [r for i, r in enumerate(rows) if keep(i)] for (s, name), rows in data.items()
           if s == setting and name in TUNING_SETS}
    if not lib:
        return None
    base = {name: metrics(rows, 1, 0.0) for name, rows in lib.items()}

    def key(choice):
        m = {name: metrics(rows, *choice) for name, rows in lib.items()}
        return (min(m[n]["hit@1"] - base[n]["hit@1"] for n in m), sum(m[n]["mrr"] - base[n]["mrr"] for n in m),
                -choice[1])

    return max(((d, w) for d in DEPTHS for w in WEIGHTS), key=key)


def write_report(data: dict, features: dict, model: str, args, weight: float) -> None:
    """The tables (searched rows, grid, cross-validation) to eval/results/rerank_llm[_tag].md, data to .json."""
    columns = sorted(data)
    setting = choice_setting(columns)
    chosen = choose(data, lambda i: True)
    folds = [(f, choose(data, lambda i, f=f: i % 2 != f)) for f in (0, 1)]
    name = Path(model).name
    p50 = statistics.median(r["seconds"] for rows in data.values() for r in rows)
    lines = [
        f"# LLM re-ranker (query likelihood): {name}",
        "",
        f"Every question of {', '.join(f'{s}/{n}' for s, n in columns)}"
        + (f" (first {args.questions} of each set)" if args.questions else "")
        + f". The features re-ranker orders the fused top 40; the LLM reads its first passages of distinct pages "
        f"and they are re-ordered by features score (min-max over them) + weight × log P(question | passage) "
        f"(nats). Top 5 after the per-page cap. Machine: {machine()}. Time per question (p50, reading "
        f"{max(DEPTHS)} passages): {p50:.2f} s. Precision: {args.precision or 'llm.precision of config.yaml'}."
        + (f" Every search, the features row's too, with query expansion: BM25 also matches the LLM answers "
           f"stored by `query_expansion.py generate --tag {args.expansions}` (their time not counted here)."
           if getattr(args, "expansions", None) else ""),
        "",
        "Cells: hit@1 / hit@5 / MRR.",
        "",
        "| re-ranker | " + " | ".join(f"{s}/{n}" for s, n in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]

    def cell(m):
        return f"{m['hit@1']:.3f} / {m['hit@5']:.3f} / {m['mrr']:.3f}"

    lines.append("| features (the default), searched | " + " | ".join(cell(features[c]) for c in columns) + " |")
    real = {c: score([r["rank"] for r in data[c]]) for c in columns}
    lines.append(f"| llm, depth {max(DEPTHS)}, weight {weight}, searched | "
                 + " | ".join(cell(real[c]) for c in columns) + " |")
    for d in DEPTHS:
        for w in WEIGHTS[1:]:
            mark = " **(chosen)**" if (d, w) == chosen else ""
            lines.append(f"| llm, depth {d}, weight {w}{mark} | " + " | ".join(cell(metrics(data[c], d, w)) for c in columns) + " |")
    deepest, (d_w, w_w) = max(DEPTHS), chosen or (max(DEPTHS), weight)
    lines += ["", "Other ways to combine the two scores (not chosen from; measured once each):", "",
              "| combination | " + " | ".join(f"{s}/{n}" for s, n in columns) + " |", "|---|" + "---|" * len(columns)]
    for label, how in other_combinations(deepest, d_w, w_w):
        lines.append(f"| {label} | " + " | ".join(cell(metrics(data[c], **how)) for c in columns) + " |")
    held_out = [n for n in sorted({n for _, n in columns}) if n not in TUNING_SETS]
    if held_out:
        lines += ["", f"Choices are made on {', '.join(TUNING_SETS)} only; {', '.join(held_out)} is held out "
                      "(written after the settings were chosen; it chooses nothing)."]
    if chosen is None:
        folds = []
        lines += ["", "No tuning set in this run: nothing is chosen."]
    lines += [
        "",
        f"Two-fold cross-validation: (depth, weight) chosen on one half of every tuning set's {setting} questions "
        "(every other question), measured on the other half; hit@1 / hit@5 / MRR, held-out half:",
        "",
        "| held-out fold | chosen on the other half | " + " | ".join(f"{s}/{n}" for s, n in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ] if folds else []
    for f, (d, w) in folds:
        held = {c: [r for i, r in enumerate(data[c]) if i % 2 == f] for c in columns}
        lines.append(f"| {f + 1} | features alone | " + " | ".join(cell(metrics(held[c], 1, 0.0)) for c in columns) + " |")
        lines.append(f"| {f + 1} | depth {d}, weight {w} | " + " | ".join(cell(metrics(held[c], d, w)) for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    stem = f"rerank_llm_{args.tag}" if args.tag else "rerank_llm"
    (RESULTS / f"{stem}.md").write_text(text)
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"model": name, "precision": args.precision or "config", "chosen": chosen, "folds": folds, "p50_s": p50,
         "data": {f"{s}/{n}": rows for (s, n), rows in data.items()}}, indent=None))
    print(text)


def other_combinations(deepest: int, depth: int, weight: float) -> list[tuple[str, dict]]:
    """(label, :func:`metrics` arguments) of the other ways to combine the two scores: the
    standardised log-likelihood over ``deepest`` passages, and the LLM deciding only the first places
    at ``depth`` and ``weight``."""
    rows = [(f"depth {deepest}, weight {w} × log-likelihood standardised over the passages read",
             dict(depth=deepest, weight=w, combine="z")) for w in (0.25, 0.5, 1.0)]
    return rows + [(f"depth {depth}, weight {weight}, only the first {m} place(s) from it, then the features order",
                    dict(depth=depth, weight=weight, first=m)) for m in (1, 3)]


def combinations_report(paths: list[str]) -> None:
    """The ways to combine the two scores measured again from stored runs (their .json), without
    reading anything: each run's own (depth, weight), standardised log-likelihood, the LLM for the
    first places only. Writes eval/results/rerank_llm_combinations.md."""
    lines = ["# Other ways to combine the LLM's log-likelihood with the features score", "",
             "Recomputed from the passages each stored run read (no model run). Cells: hit@1 / hit@5 / MRR.", ""]
    for path in paths:
        run = json.loads(Path(path).read_text())
        data = run["data"]
        depth = max(len(r["read"]) for rows in data.values() for r in rows)
        d_w, w_w = run.get("chosen") or (min(depth, 15), 0.05 if depth >= 15 else 0.1)
        rows = [("features order of the passages read", dict(depth=1, weight=0.0)),
                (f"depth {d_w}, weight {w_w} per nat (the run's choice)", dict(depth=d_w, weight=w_w))]
        rows += other_combinations(depth, d_w, w_w)
        columns = sorted(data)
        lines += [f"## {Path(path).name} ({run['model']})", "", "| combination | " + " | ".join(columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for label, how in rows:
            cells = [metrics(data[c], **how) for c in columns]
            lines.append(f"| {label} | " + " | ".join(f"{m['hit@1']:.3f} / {m['hit@5']:.3f} / {m['mrr']:.3f}"
                                                        for m in cells) + " |")
        lines.append("")
    (RESULTS / "rerank_llm_combinations.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    global DEPTHS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", choices=["single", "library"], default=["single", "library"])
    ap.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="question sets")
    ap.add_argument("--questions", type=int, default=0, help="only the first N questions of each set")
    ap.add_argument("--model", help="llm.model for this run: a .gguf file or a model folder")
    ap.add_argument("--tag", help="results go to rerank_llm_<tag>.md")
    ap.add_argument("--precision", help="llm.precision for this run (bf16 scores with a 1.5B GGUF model ~4x faster than its int4 on a CPU with bf16 units)")
    ap.add_argument("--no-section", action="store_true", help="leave the section path out of the LLM's prompt")
    ap.add_argument("--with-title", action="store_true", help="put the document's title in the LLM's prompt")
    ap.add_argument("--read", type=int, default=max(DEPTHS), help="passages the LLM reads per question (cost)")
    ap.add_argument("--expansions", metavar="TAG", help="search with the LLM answers stored by "
                    "query_expansion.py generate --tag TAG (BM25 also matches them)")
    ap.add_argument("--combinations", nargs="+", metavar="RUN.json", help="only re-score stored runs' passages "
                    "with other ways to combine the two scores (rerank_llm_combinations.md)")
    args = ap.parse_args()
    if args.combinations:
        return combinations_report(args.combinations)
    DEPTHS = tuple(d for d in DEPTHS if d < args.read) + (args.read,)
    from pipeline.llm import context_for, load_llm
    from pipeline.rerank import load_reranker, register_reranker, unregister_reranker
    from pipeline.rerank_models import LLMReranker
    from pipeline.scope import title_page_names

    kbs = open_kbs(args.settings, args.sets, fresh=False)
    if args.expansions:
        from query_expansion import use_stored

        use_stored(kbs, args.expansions)
    cfg = next(iter(kbs.values())).cfg
    update = {key: value for key, value in (("model", args.model), ("precision", args.precision)) if value}
    llm_cfg = cfg.llm.model_copy(update=update)
    partial = RESULTS / f"rerank_llm_{args.tag or 'run'}.partial.json"  # rows so far: a long run is not lost
    llm = load_llm(llm_cfg, context_for(cfg))

    class Recording(LLMReranker):
        """The real re-ranker, reading max(DEPTHS) passages at the default weight, keeping what it read."""

        record: list
        titles: dict = {}  # doc id → the title on its title page (--with-title)

        def heading(self, hit):
            head = super().heading(hit)
            name = (self.titles.get(hit.doc_id) or getattr(hit, "title", "")) if args.with_title else ""
            return head.replace("Passage", f'Passage from "{name}"', 1) if name else head

        def loglik(self, query, hit):
            value = super().loglik(query, hit)
            self.record.append((hit, self._features[id(hit)], value))
            return value

        def scores(self, query, hits):
            self._features = dict(zip(map(id, hits), self.features.scores(query, hits)))
            return super().scores(query, hits)

    reranker = Recording(llm, load_reranker(cfg, "features"), depth=max(DEPTHS), with_section=not args.no_section)
    default = LLMReranker(llm, reranker.features)
    reranker.weight = default.weight
    register_reranker("llm-measured", lambda c: reranker, replace=True)
    data, features = {}, {}
    try:
        for (setting, name), kb in sorted(kbs.items()):
            reranker.titles = title_page_names(kb.catalog)
            questions = load_questions(QUESTIONS / SETS[name][0])[: args.questions or None]
            book = SETS[name][1]
            features[(setting, name)] = score([first_hit_rank(kb.search(q["question"], k=5), set(q["pages"]), book)
                                               for q in questions])
            def save(rows, key=f"{setting}/{name}"):
                done = {f"{s}/{n}": r for (s, n), r in data.items()} | {key: rows}
                partial.write_text(json.dumps({"model": llm_cfg.model, "data": done}))

            data[(setting, name)] = collect(kb, questions, book, reranker, on_row=save)
            print(f"{setting}/{name}: {len(questions)} questions", flush=True)
    finally:
        unregister_reranker("llm-measured")

    write_report(data, features, llm_cfg.model, args, default.weight)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
