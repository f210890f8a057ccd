"""LLM benchmarks: decode/prefill speed against plain fp32 ``model.generate`` (same run, same prompt),
time to first token of ``ask``, and wall time of ``summarize`` on R-intro.pdf.

    python eval/bench_llm.py [--quick]      # also run by `make bench` through eval/bench.py

Speeds are the best of a few alternating rounds (baseline, ours, baseline, ...): on a shared machine
other processes steal cores at random, and the best round is the one least disturbed. The machine and
its load average are printed with the numbers.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SAMPLE_PDF, build_kb, load_questions, machine, r_manual  # noqa: E402

DECODE_TOKENS = 48
PROMPT_TOKENS = 512
ROUNDS = 3


def row(stage, ours, baseline=None, unit="", ratio=None, note=""):
    if ratio is None and isinstance(ours, (int, float)) and isinstance(baseline, (int, float)) and baseline:
        ratio = ours / baseline
    return {"stage": stage, "ours": ours, "baseline": baseline, "unit": unit, "ratio": ratio, "note": note}


def _load_avg() -> str:
    try:
        return "load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return ""


def _config():
    from pipeline.config import load_config
    from syllabus_common.models import enforce_offline

    cfg = load_config(ROOT / "config.yaml")
    enforce_offline(cfg.offline)
    return cfg


def _prompt_ids(tokenizer, n: int) -> list[int]:
    pdf = r_manual("R-intro.pdf") or SAMPLE_PDF
    import pymupdf

    with pymupdf.open(pdf) as doc:
        text = "\n".join(doc[i].get_text() for i in range(min(doc.page_count, 30)))
    messages = [{"role": "user", "content": "Summarize this text.\n\n" + text}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return ids[-n:]


def bench_decode(cfg, kinds: list[str]) -> list[dict]:
    """Prefill and decode tokens/s: plain fp32 transformers generate vs the fast path at each precision."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.llm import context_for
    from pipeline.llm.convert import converted_gguf, resolve_source
    from pipeline.llm.fastlm import FastDecoder

    source = resolve_source(cfg.llm.model, cfg.llm.gguf_file, cfg.offline)
    folder = Path(source.location) if source.kind == "hf" else converted_gguf(source, context_for(cfg).cache_dirs)[0]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = _prompt_ids(tokenizer, PROMPT_TOKENS)
    inputs = torch.tensor([ids])
    decoders = {kind: FastDecoder(model, kind, len(ids) + DECODE_TOKENS + 8) for kind in kinds}

    def plain() -> tuple[float, float]:
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=1, do_sample=False,
                           pad_token_id=tokenizer.eos_token_id)
            t1 = time.perf_counter()
            model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=DECODE_TOKENS + 1,
                           min_new_tokens=DECODE_TOKENS + 1, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            t2 = time.perf_counter()
        prefill = t1 - t0
        return len(ids) / prefill, DECODE_TOKENS / max(1e-9, (t2 - t1) - prefill)

    def fast(dec: FastDecoder) -> tuple[float, float]:
        dec.reset()
        t0 = time.perf_counter()
        logits = dec.prefill(ids)
        t1 = time.perf_counter()
        token = int(torch.argmax(logits))
        for _ in range(DECODE_TOKENS):
            token = int(torch.argmax(dec.step(token)))
        t2 = time.perf_counter()
        return len(ids) / (t1 - t0), DECODE_TOKENS / (t2 - t1)

    plain()  # warm-up (oneDNN primitives, allocator)
    for dec in decoders.values():
        fast(dec)
    best = {"plain": (0.0, 0.0), **{k: (0.0, 0.0) for k in kinds}}
    for _ in range(ROUNDS):
        p = plain()
        best["plain"] = (max(best["plain"][0], p[0]), max(best["plain"][1], p[1]))
        for kind, dec in decoders.items():
            f = fast(dec)
            best[kind] = (max(best[kind][0], f[0]), max(best[kind][1], f[1]))
    base_pre, base_dec = best["plain"]
    threads = torch.get_num_threads()
    rows = [row("LLM decode, plain fp32 model.generate (baseline)", base_dec, base_dec, "tokens/s",
                note=f"{source.name}, {len(ids)}-token prompt, {DECODE_TOKENS} new tokens, {threads} threads")]
    for kind in kinds:
        mb = decoders[kind].decode_weight_bytes / 1e6
        rows.append(row(f"LLM decode, fast path {kind} vs plain fp32 generate", best[kind][1], base_dec, "tokens/s",
                        note=f"{mb:.0f} MB of weights read per token; best of {ROUNDS} alternating rounds; {_load_avg()}"))
    for kind in kinds:
        extra = " (int layers, bf16 copy for prompts)" if decoders[kind].weight_bytes > decoders[kind].decode_weight_bytes else ""
        rows.append(row(f"LLM prefill, fast path {kind}{extra} vs plain fp32 generate", best[kind][0], base_pre, "tokens/s",
                        note=f"{len(ids)}-token prompt"))
    return rows


def bench_ask(cfg) -> list[dict]:
    """Seconds from question to first answer token, models loaded (retrieval + packing + prefill)."""
    from pipeline.api import answer, load_model
    from pipeline.llm import options_from_config
    from pipeline.prompting import load_prompts

    pdf = r_manual("R-intro.pdf")
    if pdf is not None:
        kb = build_kb(pdf, "kb-R-intro")
        questions = [q["question"] for q in load_questions(ROOT / "eval" / "questions" / "r-intro.jsonl")][:12]
    else:
        kb = build_kb(SAMPLE_PDF, "kb-sample")
        questions = ["How much GPU memory does LoRA fine-tuning of a 7B model need?", "What is the KV cache?",
                     "How many bytes per parameter does BF16 take?", "What does QLoRA store in 4 bits?"]
    llm = load_model(cfg, kb.path)
    prompts = load_prompts(cfg)
    kb.search("warm up", k=1)
    llm.generate([{"role": "user", "content": "Hi"}], options_from_config(cfg.llm, max_new_tokens=2))
    times, prompt_tokens = [], []
    for q in questions:
        result = answer(kb, llm, q, prompts=prompts, cfg=cfg)  # first_token_s counts from the question
        if result.found and result.timings.get("first_token_s") is not None:
            times.append(result.timings["first_token_s"])
            prompt_tokens.append(result.prompt_tokens)
    kb.close()
    if not times:
        return [row("ask time to first token", None, note="no question passed the retrieval threshold")]
    p50 = statistics.median(times)
    return [row("ask time to first token (p50), models loaded", p50, 3.0, "s",
                note=f"max {max(times):.2f} s over {len(times)} questions, prompts ~{statistics.mean(prompt_tokens):.0f} tokens; "
                     f"baseline = the 3 s target; {llm.describe().get('precision')}; {_load_avg()}")]


def bench_summarize(cfg) -> list[dict]:
    """Wall time of a whole-book summary of R-intro.pdf from an empty cache (model loaded)."""
    pdf = r_manual("R-intro.pdf")
    if pdf is None:
        return [row("summarize R-intro.pdf", None, note="R-intro.pdf not installed (Debian r-doc-pdf)")]
    from pipeline.api import load_model, summarize
    from pipeline.summarize import render_markdown

    llm = load_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        book = summarize(pdf, cfg, llm=llm, cache_dir=Path(tmp))
        wall = time.perf_counter() - t0
    out = ROOT / "eval" / "results" / "r-intro-summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(book), encoding="utf-8")
    return [row("summarize R-intro.pdf, wall time from an empty cache", wall, 900.0, "s",
                note=f"{len(book.units)} chapters, {book.model_calls} model calls, {book.coverage_line}; baseline = the 15 min "
                     f"target; {llm.describe().get('precision')}; {_load_avg()}")]


def run(quick: bool = False) -> list[dict]:
    cfg = _config()
    rows = bench_decode(cfg, ["int4"] if quick else ["fp32", "bf16", "int8", "int4"])
    rows += bench_ask(cfg)
    if not quick:
        rows += bench_summarize(cfg)
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    only = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    cfg = _config()
    if only == "decode":
        rows = bench_decode(cfg, ["int4"] if quick else ["fp32", "bf16", "int8", "int4"])
    elif only == "ask":
        rows = bench_ask(cfg)
    elif only == "summarize":
        rows = bench_summarize(cfg)
    else:
        rows = run(quick)
    print(f"Machine: {machine()}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if isinstance(r.get("ratio"), (int, float)) else ""
        ours = f"{r['ours']:.2f}" if isinstance(r["ours"], (int, float)) else "—"
        base = f"{r['baseline']:.2f}" if isinstance(r.get("baseline"), (int, float)) else "—"
        print(f"{r['stage']}: {ours} {r['unit']} (baseline {base}) {ratio}  {r['note']}")
