"""`syllabus vram` (memory estimate, seed rule, dry-run measurement) and `syllabus plan` (what fits here,
or how to fine-tune a model): each parses its options, calls one function of pipeline.api and renders
the dataclass it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import typer

from pipeline.ui import command_with_options

_O = typer.Option


@dataclass
class VramOptions:
    """`syllabus vram`'s options, declared once. The names are pipeline.api.estimate()'s keywords (the
    fields of estimator.Settings among them), so the command passes them on as they are."""

    model: Optional[str] = _O(None, "--model", "-m", help="Catalog name (llama-3.1-8b, qwen2.5-7b, whisper-base, ...) or a path.")
    config: Optional[str] = _O(None, "--config", help="A model's config.json, HF model folder or .gguf file.")
    params: Optional[str] = _O(None, "--params", help="Just a parameter count (7B, 135M): a Llama-shaped stand-in.")
    mode: str = _O("inference", "--mode", help="inference, full, lora, qlora, or all (compare modes).")
    precision: Optional[str] = _O(None, "--precision", "-p", help="fp32, bf16, fp16, int8, nf4, fp4, gptq-int4, awq-int4, a GGUF type (Q4_K_M...), or all. Default: bf16 (nf4 for qlora).")
    seq: int = _O(2048, "--context", "--seq", min=1, help="Tokens: the context (inference) or sequence length (training).")
    batch: int = _O(1, "--batch", "-b", min=1, help="Sequences at once.")
    kv_cache_dtype: Optional[str] = _O(None, "--kv-cache-dtype", help="KV cache dtype: fp16, bf16, fp32, fp8, int8, q8_0, q4_0 (default: compute dtype).")
    optimizer: str = _O("adamw", "--optimizer", "--optim", help="adamw, adamw8bit, paged_adamw, paged_adamw8bit, sgd (momentum), adafactor.")
    gpus: int = _O(1, "--gpus", min=1, help="Data-parallel GPUs (training): the estimate is per GPU.")
    shard: str = _O("none", "--shard", help="none, ddp, zero1, zero2, zero3 or fsdp (states split among --gpus).")
    offload: str = _O("none", "--offload", help="none, optimizer or params (to CPU RAM; params needs zero3/fsdp).")
    grad_accum: int = _O(1, "--grad-accum", min=1, help="Micro-batches per optimizer step (above 1, gradients stay allocated through every backward).")
    loss: str = _O("full", "--loss", help="full (transformers: fp32 logits over the vocabulary) or chunked (torchtune/LitGPT).")
    runtime: str = _O("auto", "--runtime", help="Whisper runtime: ctranslate2 (faster-whisper, default), openai or transformers.")
    framework: str = _O("hf", "--framework", help="Decoder training code: hf (transformers + peft + bitsandbytes, default) or litgpt.")
    lora_dropout: float = _O(0.05, "--lora-dropout", min=0.0, max=0.99, help="LoRA dropout (above 0 each dropout keeps a 1-byte mask).")
    window_tokens: Optional[int] = _O(None, "--window-tokens", min=1, help="Whisper batches: tokens per 30-s window (default 224, any language; ~133 for English speech).")
    cuda_context_mib: Optional[int] = _O(None, "--cuda-context", min=0, help="CUDA context in MiB (default: 1024 for PyTorch, 512 for CTranslate2).")
    target_seq: Optional[int] = _O(None, "--target-seq", min=1, help="Encoder-decoder training: decoder tokens (T5: --seq; Whisper: 448).")
    grad_ckpt: bool = _O(False, "--grad-ckpt", help="Gradient checkpointing (recompute activations per layer).")
    attention: str = _O("sdpa", "--attention", help="sdpa or flash (no s² term) or eager (stores attention scores).")
    lora_rank: int = _O(16, "--lora-rank", "-r", min=1, help="LoRA rank.")
    lora_targets: str = _O("all-linear", "--lora-targets", help="Comma-separated modules (q_proj,v_proj) or all-linear.")
    master_weights: bool = _O(True, "--master-weights/--no-master-weights", help="16-bit full fine-tuning keeps fp32 master weights (mixed precision).")
    double_quant: Optional[bool] = _O(None, "--double-quant/--no-double-quant", help="bitsandbytes 4-bit double quantization (default: on for qlora).")
    group_size: int = _O(128, "--group-size", help="GPTQ/AWQ group size (-1: per channel).")
    beam: int = _O(1, "--beam", min=1, help="Whisper beam size.")
    overhead: bool = _O(True, "--overhead/--no-overhead", help="Add CUDA context and allocator slack.")
    rule: Optional[str] = _O(None, "--rule", help="seed: print the seed article's rule of thumb beside the estimate.")
    measure: bool = _O(False, "--measure", help="Dry run under FakeTensorMode + MemTracker (CPU, no memory) and compare.")
    gpu: Optional[str] = _O(None, "--gpu", help="Check the fit on a catalog card (T4, L4, A10, RTX 3060/3090/4090/5090, A100 40GB/80GB, H100, H200).")
    vram: Optional[str] = _O(None, "--vram", help="Check the fit on this much memory (24GB, 16GiB).")
    margin: float = _O(0.10, "--margin", min=0.0, max=0.9, help="Safety margin for the fit check (fraction).")
    plot: Optional[str] = _O(None, "--plot", help="Write stacked bars of the components to this PNG.")
    as_json: bool = _O(False, "--json", help="Print as JSON.")


def _render_vram(r, seq: int, batch: int) -> None:
    from pipeline.planner import GiB, report
    from pipeline.ui import note, out

    ests = r.estimates
    if len(ests) == 1:
        out.print(report.estimate_table(ests[0]))
    else:
        what = "modes" if r.mode == "all" else "precisions"
        out.print(report.comparison_table(ests, r.labels, f"{r.model} · {what} · {seq} tokens × batch {batch}"))
    for n in dict.fromkeys(n for e in ests for n in e.notes):
        note(f"note: {n}")
    if r.device is not None:
        for label, e in zip(r.labels, ests):
            verdict = "fits" if r.fits[label] else "does NOT fit"
            out.print(f"{label}: {e.total_gib:.1f} GiB on {r.device.name} ({r.device.available_bytes / GiB:.1f} GiB, "
                      f"{r.margin:.0%} margin → {r.budget_bytes / GiB:.1f} GiB): {verdict}", highlight=False)
    if r.seed is not None:
        out.print(report.seed_table(r.seed, ests[0], r.seed.differences))
    if r.measurement is not None:
        out.print(report.measure_table(r.measured_estimate, r.measurement))
        for n in r.measurement.notes:
            note(f"note: {n}")
    if r.plot:
        note(f"plot written to {r.plot}")


@command_with_options(VramOptions)
def vram(o: VramOptions) -> None:
    """Estimate GPU memory to run or train a model, component by component.

    Examples:
      syllabus vram --model llama-2-7b --mode inference --precision bf16 --context 4096 --batch 1
      syllabus vram --model qwen2.5-7b --mode qlora --seq 2048 --batch 2 --grad-ckpt
      syllabus vram --params 7B --mode full --precision fp32 --rule seed
      syllabus vram --config path/to/config.json --mode lora --measure
      syllabus vram --model llama-3.1-8b --mode inference --precision all --plot mem.png
      syllabus vram --model whisper-large-v3 --beam 5 --gpu T4
      syllabus vram --model whisper-large-v3 --runtime transformers --batch 8
      syllabus vram --model llama-3.1-70b --mode full --gpus 8 --shard zero3 --offload optimizer
      syllabus vram --model mt5-base --mode lora --seq 512 --target-seq 128
    """
    from pipeline.api import estimate
    from pipeline.ui import emit_json, note

    def dry_run_note() -> None:
        if not o.as_json:
            note("dry run under FakeTensorMode: building the model and running the step on fake tensors …")

    options = asdict(o)
    del options["as_json"]
    report = estimate(**options, on_measure=dry_run_note)
    for n in report.notes:
        note(n)
    if o.as_json:
        emit_json(report.as_dict())
    else:
        _render_vram(report, o.seq, o.batch)


def _render_finetune(fp) -> None:
    from pipeline.planner import report
    from pipeline.ui import note, out

    out.print(report.finetune_table(fp))
    out.print(report.seed_lines(fp), highlight=False)
    for line in fp.lines:
        out.print(f"• {line}", highlight=False)
    if fp.plot:
        note(f"plot written to {fp.plot}")


def plan(
    gpu: Optional[str] = _O(None, "--gpu", help="Plan for a catalog card instead of this machine (T4, RTX 4090, A100 80GB, ...)."),
    vram_size: Optional[str] = _O(None, "--vram", help="Plan for this much GPU memory (24GB, 16GiB)."),
    context: int = _O(4096, "--context", min=256, help="Tokens the LLM must hold."),
    margin: float = _O(0.10, "--margin", min=0.0, max=0.9, help="Fraction of memory kept free."),
    allow_download: bool = _O(False, "--allow-download", help="Also choose models whose weights are not on this machine."),
    finetune: Optional[str] = _O(None, "--finetune", help="Plan fine-tuning this model (catalog name or config path) instead."),
    gpus: Optional[str] = _O(None, "--gpus", help="With --finetune: GPUs, as 4x80GB or a count of the card found / given."),
    seq: Optional[int] = _O(None, "--seq", min=1, help="With --finetune: training sequence length (default 2048 or the model's)."),
    plot: Optional[str] = _O(None, "--plot", help="With --finetune: stacked bars of the best setups to this PNG."),
    cluster: Optional[str] = _O(None, "--cluster", metavar="[ADDRESS]", help="Plan the workers of a Ray cluster (auto, HOST:PORT; alone: a local Ray instance). Needs pip install 'syllabus[ray]'."),
    audio_hours: float = _O(0.0, "--audio-hours", min=0.0, help="With --cluster: hours of recordings to ingest."),
    pages: int = _O(0, "--pages", min=0, help="With --cluster: pages of documents to ingest."),
    as_json: bool = _O(False, "--json", help="Print as JSON."),
) -> None:
    """Pick the speech model, embedder and LLM (with precision) that fit this machine, and say why.

    Examples:
      syllabus plan
      syllabus plan --gpu "RTX 4090" --context 8192 --json
      syllabus plan --vram 12GB --allow-download
      syllabus plan --finetune llama-3.1-8b --vram 24GB
      syllabus plan --finetune llama-3.1-70b --gpus 4x80GB --json
      syllabus plan --cluster auto --audio-hours 100 --pages 5000   # workers and hours on a Ray cluster
    """
    from pipeline.planner import report
    from pipeline.api import finetune as plan_finetune, plan as plan_machine
    from pipeline.ui import emit_json, out
    from syllabus_common.errors import ConfigError

    if not finetune and (gpus or seq or plot):
        raise ConfigError("--gpus, --seq and --plot go with --finetune MODEL")
    if cluster is None and (audio_hours or pages):
        raise ConfigError("--audio-hours and --pages go with --cluster [ADDRESS]")
    if cluster is not None:
        from pipeline.api import cluster_plan
        from pipeline.ui import STATE

        cp = cluster_plan(STATE.config(), cluster, audio_hours=audio_hours, pages=pages, vram=vram_size)
        if as_json:
            emit_json(cp.as_dict())
        else:
            for line in cp.lines:
                out.print(f"• {line}", highlight=False)
        return
    if finetune:
        fp = plan_finetune(finetune, gpus=gpus, gpu=gpu, vram=vram_size, seq=seq, margin=margin, plot=plot)
        emit_json(fp.as_dict()) if as_json else _render_finetune(fp)
        return
    result = plan_machine(gpu=gpu, vram=vram_size, context=context, margin=margin, allow_download=allow_download)
    if as_json:
        emit_json(result.as_dict())
        return
    out.print(report.plan_table(result.plan))
    for line in result.plan.lines:
        out.print(f"• {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(vram)
    app.command()(plan)
