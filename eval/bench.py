"""`make bench`: throughput of each stage, each next to a baseline measured in the same run.

    python eval/bench.py [--quick]

Uses R-intro.pdf (Debian r-doc-pdf) when installed, else the bundled sample PDF. Prints a table
and writes eval/results/bench.md. Benchmarks report numbers; tests assert behaviour.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SAMPLE_PDF, WORK, load_questions, machine, r_manual  # noqa: E402


def row(stage, ours, baseline=None, unit="", ratio=None, note=""):
    if ratio is None and isinstance(ours, (int, float)) and isinstance(baseline, (int, float)) and baseline:
        ratio = ours / baseline
    return {"stage": stage, "ours": ours, "baseline": baseline, "unit": unit, "ratio": ratio, "note": note}


def bench_extraction(pdf: Path) -> list[dict]:
    import pymupdf
    import pypdf

    from ingest.pdf import extract_pdf

    t = time.perf_counter()
    with pymupdf.open(pdf) as doc:
        n = doc.page_count
        for page in doc:
            page.get_text("text")
    raw_mupdf = n / (time.perf_counter() - t)
    t = time.perf_counter()
    extract_pdf(pdf)  # our whole extraction: labels, outline, clean-up, sections
    ours = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for page in pypdf.PdfReader(pdf).pages:
        page.extract_text()
    base = n / (time.perf_counter() - t)
    return [
        row("PDF text, PyMuPDF get_text vs pypdf", raw_mupdf, base, "pages/s", note=pdf.name),
        row("PDF extraction incl. labels/TOC/clean-up vs pypdf text only", ours, base, "pages/s", note=pdf.name),
    ]


def bench_embedding(pdf: Path) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from ingest.pdf import extract_pdf
    from pipeline.chunking import Chunker
    from pipeline.config import load_config
    from pipeline.embed import Embedder
    from syllabus_common.models import bundled_path

    cfg = load_config(ROOT / "config.yaml")
    emb = Embedder.from_config(cfg)
    chunks = Chunker(emb.count_tokens, cfg.chunking.size, cfg.chunking.overlap).chunk(extract_pdf(pdf).spans)
    texts = [c.text for c in chunks][:256]
    emb.encode(texts[:8])
    t = time.perf_counter()
    ours_vecs = emb.encode(texts)
    ours = len(texts) / (time.perf_counter() - t)
    plain = SentenceTransformer(str(bundled_path("all-MiniLM-L6-v2")), device="cpu")
    plain.encode(texts[:8])
    t = time.perf_counter()
    base_vecs = plain.encode(texts, normalize_embeddings=True)  # library defaults: fp32, batch 32
    base = len(texts) / (time.perf_counter() - t)
    agreement = float((ours_vecs * base_vecs).sum(1).min())
    from pipeline.onnx_embed import embedder_for

    onnx = embedder_for(cfg)  # what ingest and search use by default (embedding.runtime: onnx)
    onnx.encode(texts[:8])
    t = time.perf_counter()
    onnx_vecs = onnx.encode(texts)
    onnx_rate = len(texts) / (time.perf_counter() - t)
    onnx_agreement = float((onnx_vecs * base_vecs).sum(1).min())
    return [row("embedding MiniLM (PyTorch: length-sorted, autocast) vs sentence-transformers fp32 defaults",
                ours, base, "chunks/s", note=f"{len(texts)} chunks of ≤{cfg.chunking.size} tokens; min cosine to fp32 {agreement:.5f}; precision {emb.compute_dtype}"),
            row(f"embedding MiniLM, ONNX Runtime fp32 ({onnx.runtime}, the default) vs PyTorch autocast (above)",
                onnx_rate, ours, "chunks/s", note=f"same chunks; min cosine to sentence-transformers fp32 {onnx_agreement:.6f}")]


def bench_ingest(pdf: Path) -> tuple[list[dict], Path]:
    kb = WORK / "bench-kb"
    shutil.rmtree(kb, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--quiet", "--kb", str(kb), "ingest", str(pdf)], check=True, cwd=ROOT)
    wall = time.perf_counter() - t
    import sqlite3

    with sqlite3.connect(kb / "catalog.sqlite") as db:
        pages, chunks = db.execute("SELECT SUM(n_pages), (SELECT COUNT(*) FROM chunks) FROM documents").fetchone()
    return [row("whole ingest, fresh process (load models, extract, chunk, embed, index)", wall, None, "s",
                note=f"{pdf.name}: {pages} pages, {chunks} chunks; target ≤ 30 s for R-intro")], kb


def _latencies(kb, questions: list[str], variants: list[dict]) -> list[list[float]]:
    """ms per search for each variant (search keyword arguments), interleaved per question so that
    load from other processes falls on all variants alike."""
    times: list[list[float]] = [[] for _ in variants]
    for q in questions:
        for i, kwargs in enumerate(variants):
            t = time.perf_counter()
            kb.search(q, k=5, **kwargs)
            times[i].append((time.perf_counter() - t) * 1000)
    return times


def _rerank_cost(kb, questions: list[str]) -> float:
    from pipeline.rerank import _passage_tokens, load_reranker, rerank

    reranker = load_reranker(kb.cfg, "features")
    times = []
    for q in questions:
        hits = kb.search(q, k=40, rerank="none")
        _passage_tokens.cache_clear()  # as for a first question: every passage tokenized afresh
        t = time.perf_counter()
        rerank(reranker, q, hits)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_search(kb_dir: Path, questions: list[str]) -> list[dict]:
    """In-process search latency per retriever; the default (hybrid + features re-ranker) next to
    hybrid without re-ranking, on the ingested book and, when eval/work/kb-library exists (made by
    eval/retrieval_eval.py), on the seven-manual library."""
    from pipeline.config import load_config
    from pipeline.kb import KnowledgeBase

    cfg = load_config(ROOT / "config.yaml")
    rows = []
    variants = [{"fusion": "rrf"}, {"fusion": "rrf", "rerank": "none"}, {"fusion": "dense"}, {"fusion": "bm25"}]
    for label, folder in (("", kb_dir), (" in the 7-manual library", WORK / "kb-library")):
        if not (folder / "catalog.sqlite").exists():
            continue
        kb = KnowledgeBase(cfg, folder)
        kb.search("warm up", k=5)
        default, plain, dense, bm25 = (statistics.median(t) for t in _latencies(kb, questions, variants))
        rows.append(row(f"search latency p50{label}, hybrid + features re-ranker (default) vs hybrid without",
                        default, plain, "ms", note=f"{len(questions)} queries; target p50 ≤ 50 ms"))
        rows.append(row(f"search latency p50{label}, dense / BM25 alone", f"{dense:.1f} / {bm25:.2f}", None, "ms"))
        rows.append(row(f"features re-ranker alone{label}, 40 candidates", _rerank_cost(kb, questions), None, "ms",
                        note="p50 of the re-ranking step itself (features + sort), passage-token cache emptied"))
        kb.close()
    return rows


def other_benchmarks(quick: bool) -> list[dict]:
    """Stage benchmarks that live beside their features (eval/bench_*.py with run() -> rows)."""
    rows = []
    for name in ("bench_startup", "bench_llm", "bench_asr", "bench_planner", "bench_serve", "bench_ray"):
        if not (ROOT / "eval" / f"{name}.py").exists():
            continue
        mod = importlib.import_module(name)
        try:
            rows += mod.run(quick=quick) if "quick" in mod.run.__code__.co_varnames else mod.run()
        except Exception as exc:  # one failing stage must not hide the others' numbers
            rows.append(row(name, None, None, "", note=f"failed: {type(exc).__name__}: {exc}"))
    return rows


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"
    return str(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Skip the slowest stage benchmarks (long audio, whole-book summaries).")
    ap.add_argument("--only", choices=["kb", "search", "others"],
                    help="Run one group only (search: latency on the KBs eval/retrieval_eval.py cached in eval/work/).")
    args = ap.parse_args()
    from syllabus_common.models import enforce_offline

    enforce_offline(True)
    pdf = r_manual("R-intro.pdf") or SAMPLE_PDF
    qfile = ROOT / "eval" / "questions" / "r-intro.jsonl"
    questions = [q["question"] for q in load_questions(qfile)] if pdf.name == "R-intro.pdf" else [
        "How much memory does LoRA need for a 7B model?", "What is the KV cache?", "bytes per parameter in BF16"] * 10
    rows: list[dict] = []
    if args.only in (None, "kb"):
        rows += bench_extraction(pdf)
        rows += bench_embedding(pdf)
        ingest_rows, kb_dir = bench_ingest(pdf)
        rows += ingest_rows
        rows += bench_search(kb_dir, questions)
    if args.only == "search":
        rows += bench_search(WORK / "kb-R-intro", questions)
    if args.only in (None, "others"):
        rows += other_benchmarks(args.quick)

    write_results(rows, f"Machine: {machine()}. Book: {pdf.name}.", "bench.md" if args.only is None else f"bench-{args.only}.md")


def write_results(rows: list[dict], header: str, name: str) -> None:
    """Print the rows as a Markdown table and write it (and the rows as JSON) to eval/results/NAME."""
    lines = [header, "", "| stage | ours | baseline | unit | ours / baseline | notes |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if isinstance(r.get("ratio"), (int, float)) else "—"
        lines.append(f"| {r['stage']} | {fmt(r['ours'])} | {fmt(r.get('baseline'))} | {r.get('unit', '')} | {ratio} | {r.get('note', '')} |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    out.write_text("# Benchmarks\n\n" + text + "\n")
    (out.with_suffix(".json")).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
