"""How the ``features`` re-ranker's default weights were chosen: a coarse grid, measured on both sets.

    python eval/rerank_tune.py

For each question set and setting (see retrieval_eval.py), the fused top 40 is computed once; then
every weight combination of a coarse grid re-orders it. The default is the combination with the
best *worst* library hit@1 over the two sets (ties: mean MRR), so a weight has to help both books.
Writes eval/results/rerank_tune.md (the ablation: each feature alone and each one left out).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, load_questions, machine  # noqa: E402
from retrieval_eval import QUESTIONS, SETS, first_hit_rank, open_kbs  # noqa: E402

FEATURES = ("title", "code", "doc", "section", "nav")
SIGN = {"nav": -1.0}  # subtracted
GRID = {"title": (0, 0.15, 0.3, 0.5), "code": (0, 0.15, 0.3, 0.5), "doc": (0, 0.15, 0.3, 0.5, 0.8),
        "section": (0, 0.1, 0.2, 0.4), "nav": (0, 0.3, 0.6)}
DEPTH = 40


def collect(kb, questions: list[dict], book: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per question: the feature matrix (candidates × base+features) and which candidates are gold."""
    from pipeline.rerank import FeatureReranker

    reranker = FeatureReranker(stemmer=kb.cfg.retrieval.stemmer)
    out = []
    for q in questions:
        hits = kb.search(q["question"], k=DEPTH, rerank="none")
        feats = reranker.features(q["question"], hits)
        matrix = (np.array([[f["base"]] + [SIGN.get(n, 1.0) * f[n] for n in FEATURES] for f in feats])
                  if feats else np.zeros((0, 1 + len(FEATURES))))
        gold = np.array([first_hit_rank([h], set(q["pages"]), book) == 1 for h in hits], dtype=bool)
        out.append((matrix, gold))
    return out


def measure(data, weights: dict) -> dict:
    w = np.array([1.0] + [weights[n] for n in FEATURES])
    ranks = []
    for matrix, gold in data:
        if not len(matrix):
            ranks.append(None)
            continue
        order = np.argsort(-(matrix @ w), kind="stable")
        where = np.flatnonzero(gold[order])
        ranks.append(int(where[0]) + 1 if len(where) else None)
    n = len(ranks)
    return {"hit@1": sum(r == 1 for r in ranks) / n, "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


def main() -> None:
    kbs = open_kbs(["single", "library"], list(SETS), fresh=False)
    data = {key: collect(kb, load_questions(QUESTIONS / SETS[key[1]][0]), SETS[key[1]][1]) for key, kb in kbs.items()}
    combos = [dict(zip(FEATURES, values)) for values in itertools.product(*(GRID[n] for n in FEATURES))]

    def key(weights):
        lib = [measure(data[("library", s)], weights) for s in SETS]
        return (min(m["hit@1"] for m in lib), sum(m["mrr"] for m in lib) / len(lib))

    best = max(combos, key=key)
    rows = {"no re-ranking": dict.fromkeys(FEATURES, 0), "best on the grid": best}
    for n in FEATURES:
        rows[f"{n} only"] = {m: (best[n] if m == n else 0) for m in FEATURES}
        rows[f"all but {n}"] = {m: (0 if m == n else best[m]) for m in FEATURES}
    cols = [(s, q) for s in ("single", "library") for q in SETS]
    lines = [
        "# features re-ranker: weight grid and ablation",
        "",
        f"Fused top {DEPTH} re-ordered by base + Σ weight × feature; grid {GRID}; chosen by the best worst "
        f"library hit@1 over the two sets (ties: mean MRR). Machine: {machine()}.",
        "",
        "| weights | " + " | ".join(f"{s}/{q} hit@1 / hit@5 / MRR" for s, q in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label, weights in rows.items():
        cells = []
        for c in cols:
            m = measure(data[c], weights)
            cells.append(f"{m['hit@1']:.3f} / {m['hit@5']:.3f} / {m['mrr']:.3f}")
        lines.append(f"| {label} {weights} | " + " | ".join(cells) + " |")
    (RESULTS / "rerank_tune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
